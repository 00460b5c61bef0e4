"""The one redaction function: registered secrets, credentials by name, and URL passwords."""

from __future__ import annotations

import pytest

from smsrelay import redaction
from smsrelay.redaction import MASK, redact, register_secret


@pytest.fixture(autouse=True)
def _no_secret_registered(monkeypatch):
    """Each test starts with an empty registry, whatever ran before it on this worker.

    Otherwise a secret another test registered could mask a value here, and a test would pass
    (or kill a mutant) only in some orders.
    """
    monkeypatch.setattr(redaction, "_secrets", set())
    monkeypatch.setattr(redaction, "_pattern", None)


def test_a_registered_secret_is_masked_wherever_it_appears():
    register_secret("tok-4f9a")
    assert redact("sent tok-4f9a, then tok-4f9a again") == f"sent {MASK}, then {MASK} again"


def test_secrets_of_four_characters_or_more_are_masked_shorter_ones_not():
    # A three-character "secret" would mask ordinary words ("the", "abc") all over the logs.
    register_secret("q7z")
    register_secret("q7zw")
    assert redact("q7z and q7zw") == f"q7z and {MASK}"
    register_secret(None)
    register_secret("")
    assert redact("q7z") == "q7z"


def test_the_longer_of_two_overlapping_secrets_is_masked_whole():
    # Registered shortest first: matching it first would leave "-tail" of the longer one showing.
    register_secret("k3y-head")
    register_secret("k3y-head-tail")
    assert redact("a k3y-head-tail b k3y-head c") == f"a {MASK} b {MASK} c"


def test_every_registered_secret_is_masked():
    for secret in ("alpha-1", "bravo-2", "charlie-3"):
        register_secret(secret)
    register_secret("bravo-2")  # registering twice changes nothing
    assert redact("alpha-1 bravo-2 charlie-3 delta-4") == f"{MASK} {MASK} {MASK} delta-4"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("password=hunter22", "password=***"),
        ("POST /login?user=ann&password=hunter22&next=/", "POST /login?user=ann&password=***&next=/"),
        ('{"api_key": "v4lue", "to": "x"}', '{"api_key": "***", "to": "x"}'),
        ("{'api-key': 'v4lue'}", "{'api-key': '***'}"),
        ("apikey=v4lue", "apikey=***"),
        ("API_KEY=v4lue", "API_KEY=***"),
        ("api_secret=v4lue; path=/", "api_secret=***; path=/"),
        ("x-api-key: v4lue", "x-api-key: ***"),
        ("Authorization: Bearer v4lue", "Authorization: ***"),
        ("authorization: Basic YW5uOnB3", "authorization: ***"),
        ("secret=v4lue", "secret=***"),
        ("token=v4lue", "token=***"),
        ("access_token=v4lue", "access_token=***"),
        ("refresh_token=v4lue", "refresh_token=***"),
        ('"client_secret":"v4lue"}', '"client_secret":"***"}'),
        ("private_key = v4lue", "private_key = ***"),
    ],
)
def test_credentials_are_masked_by_their_name(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        # A name quoted as a label, with no quoted value after it, is kept: the message must say which field.
        "field 'kudosity.api_key': kudosity needs api_key",
        "the token expired",
        "tokens=3 secretary=ann password_hint=blue",
        "",
    ],
)
def test_text_that_only_mentions_a_credential_is_kept(text):
    assert redact(text) == text


def test_a_password_in_a_url_is_masked_and_the_rest_kept():
    assert redact("GET https://ann:pw-123@api.example.com/v1?x=1") == "GET https://***@api.example.com/v1?x=1"
    assert redact("http://ann:pw-123@h/") == "http://***@h/"
    assert redact("https://api.example.com/a@b") == "https://api.example.com/a@b"
    # A password may hold an "@": all of it goes, up to the last "@" before the path.
    assert redact("https://ann:pw@123@h/x?to=a@b") == "https://***@h/x?to=a@b"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("journal postgresql://app:s3cret@db/x", "journal postgresql://app:***@db/x"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
        ("redis://app:s3c@ret@cache:6379/0", "redis://app:***@cache:6379/0"),
        ("postgresql://app@db/x and 10:30@home", "postgresql://app@db/x and 10:30@home"),
    ],
)
def test_a_password_in_any_other_url_is_masked_and_its_user_kept(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/smsrelay", "postgresql://app:***@db:5432/smsrelay"),
        ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
        ("postgresql://app:s3c@ret@db/x", "postgresql://app:***@db/x"),
        ("postgresql://app@db/x?sslmode=require", "postgresql://app@db/x?sslmode=require"),
        ("sqlite:///var/lib/smsrelay/inbox.db", "sqlite:///var/lib/smsrelay/inbox.db"),
        ("host=db user=app password=s3cret", "host=db user=app password=***"),
        ("postgresql://db/x?password=s3cret&sslmode=require", "postgresql://db/x?password=***&sslmode=require"),
        # urlsplit refuses this one (an unclosed IPv6 bracket); its password is masked all the same.
        ("postgresql://app:s3cret@[db/x", "postgresql://app:***@[db/x"),
    ],
)
def test_a_dsn_s_password_is_masked_in_every_form(dsn, shown):
    assert redact(dsn) == shown
