"""Client.events: one feed over push and pull, with durable named cursors."""

from __future__ import annotations

import pytest
import requests

from smsrelay import Client
from smsrelay.config import ProviderSettings
from smsrelay.errors import InvalidRequest
from smsrelay.model import Reply, Status
from smsrelay.receiver import route_for
from tests.fixtures.receiver import SANDBOX_TOKEN, sandbox_push


@pytest.fixture
def make_client(tmp_path, clock):
    clients = []

    def make(**kw):
        c = Client("sandbox", path=str(tmp_path / "sbx.db"), clock=clock, env={}, inbox=kw.pop("inbox", None), **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def kinds(page):
    return [(e.kind, e.phone[-4:], getattr(e, "status", None) or getattr(e, "text", None)) for e in page]


def test_named_cursor_survives_restart_at_least_once(make_client, clock, inbox_url):
    first = make_client(inbox=inbox_url)
    first.send(["+61491570004", "+61491570009"], "Reply YES or NO")
    clock.advance(10)
    page = first.events(cursor="bridge")
    got = kinds(page)
    assert ("reply", "0004", "YES") in got
    # The late duplicate `sent` for 0009 comes after `delivered`: the feed drops it.
    statuses_0009 = [s for k, p, s in got if k == "delivery" and p == "0009"]
    assert statuses_0009 == [Status.QUEUED, Status.SENT, Status.DELIVERED]
    assert not page.more

    # Not committed yet: a restart re-delivers the page (at least once).
    second = make_client(inbox=inbox_url)
    assert kinds(second.events(cursor="bridge")) == got
    second.commit_events("bridge")
    third = make_client(inbox=inbox_url)
    assert len(third.events(cursor="bridge")) == 0

    # New events after a restart: exactly the new ones, nothing replayed, nothing skipped.
    third.provider.inject_reply("+61491570004", "thanks")
    clock.advance(1)
    fresh = third.events(cursor="bridge")
    assert kinds(fresh) == [("reply", "0004", "thanks")]
    # Reading again commits the page before: nothing more.
    assert len(third.events(cursor="bridge")) == 0
    assert make_client(inbox=inbox_url).events(cursor="bridge").events == []
    # Another reader has its own cursor and sees everything.
    assert len(make_client(inbox=inbox_url).events(cursor="airflow", limit=1000)) == len(got) + 1


def test_polling_cursor_is_stored_with_the_events(make_client, clock, tmp_path):
    url = str(tmp_path / "inbox.db")
    a = make_client(inbox=url)
    a.send(["+61491570156"], "hi")
    clock.advance(10)
    feed = a.feed("x")
    assert feed.pump() == 3  # queued, sent, delivered
    assert make_client(inbox=url).feed("x").pump() == 0  # a restart does not poll them again
    a.send(["+61491570157"], "hi")
    clock.advance(10)
    assert make_client(inbox=url).feed("x").pump() == 3


def test_push_and_pull_in_one_feed_deduplicated(make_client, clock, tmp_path, start_receiver):
    client = make_client(inbox=str(tmp_path / "inbox.db"))
    settings = ProviderSettings("sandbox", webhook_secret=SANDBOX_TOKEN, options={"path": str(tmp_path / "sbx.db")})
    rec = start_receiver([route_for(settings)], client.inbox)
    client.send(["+61491570156"], "hi")
    clock.advance(10)
    polled = client.events(cursor="c")
    pushed = Reply("sbx-push-1", "sandbox", "+61491570156", clock.now(), "mo-1", text="pushed")
    for _ in range(2):  # the provider pushes twice
        resp = requests.post(
            rec.url + "/webhooks/sandbox",
            data=sandbox_push(pushed, polled.events[0]),
            headers={"X-Smsrelay-Token": SANDBOX_TOKEN},
            timeout=10,
        )
        assert resp.status_code == 200
    assert client.events(cursor="c").events == [pushed]


def test_since_cursors_with_an_inbox_and_without(make_client, clock, tmp_path):
    with_inbox = make_client(inbox=str(tmp_path / "inbox.db"))
    with_inbox.send(["+61491570156"], "hi")
    clock.advance(10)
    page = with_inbox.events(limit=2)
    assert page.cursor == "inbox:2" and page.more
    rest = with_inbox.events(since=page.cursor)
    assert [e.status for e in rest] == [Status.DELIVERED]
    with pytest.raises(InvalidRequest, match="not a feed cursor"):
        with_inbox.events(since="inbox:abc")
    # No inbox configured: the provider is polled directly, with its own cursors, as before.
    plain = make_client()
    legacy = plain.events()
    assert len(legacy) == 3 and not legacy.cursor.startswith("inbox:")
    assert len(plain.events(since=legacy.cursor)) == 0


def test_env_stands_for_the_whole_environment_even_for_the_inbox(make_client, tmp_path, monkeypatch):
    # The process has an inbox configured; a client given env= must not see it.
    stray = tmp_path / "process-inbox.db"
    monkeypatch.setenv("SMSRELAY_INBOX", str(stray))
    isolated = make_client()
    isolated.send(["+61491570156"], "hi")
    page = isolated.events()
    assert not page.cursor.startswith("inbox:")  # polled the provider directly: no inbox configured
    assert not stray.exists()
    with Client("sandbox", path=str(tmp_path / "sbx.db"), env={"SMSRELAY_INBOX": str(tmp_path / "env.db")}) as given:
        assert given.events().cursor.startswith("inbox:")  # ... and one configured in env= is used
    assert (tmp_path / "env.db").exists() and not stray.exists()


def run_cli(*args, env_extra=None):
    import os
    import subprocess
    import sys

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "smsrelay", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_events_with_a_named_cursor_resumes_after_what_it_printed(tmp_path):
    env = {"SMSRELAY_PROVIDER": "sandbox", "SMSRELAY_SANDBOX_PATH": str(tmp_path / "sbx.db")}
    env["SMSRELAY_INBOX"] = str(tmp_path / "inbox.db")
    sent = run_cli("send", "+61491570004", "-m", "hi", env_extra=env)
    assert sent.returncode == 0, sent.stderr
    first = run_cli("events", "--cursor", "ops", "--json", env_extra=env)
    assert first.returncode == 0, first.stderr
    assert '"kind": "delivery"' in first.stdout and '"status": "queued"' in first.stdout
    again = run_cli("events", "--cursor", "ops", "--json", env_extra=env)
    assert again.returncode == 0 and '"status": "queued"' not in again.stdout
    both = run_cli("events", "--cursor", "ops", "--since", "inbox:0", env_extra=env)
    assert both.returncode == 2 and "--cursor" in both.stderr


def test_cli_webhooks_serve_refuses_bad_routes(tmp_path):
    bad = run_cli("webhooks", "serve", "--route", "nosep", "--inbox", str(tmp_path / "i.db"))
    assert bad.returncode == 2
    assert "--route takes NAME=CONFIG_FILE" in bad.stderr
    missing = run_cli(
        "webhooks", "serve", "--route", f"x={tmp_path / 'absent.yaml'}", "--inbox", str(tmp_path / "i.db")
    )
    assert missing.returncode == 2
    assert "cannot read the config file" in missing.stderr
    scheme = run_cli("webhooks", "serve", "--provider", "sandbox", "--inbox", "mysql://u:hunter2@h/db")
    assert scheme.returncode == 2
    assert "unknown inbox URL scheme" in scheme.stderr and "hunter2" not in scheme.stderr
