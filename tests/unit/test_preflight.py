"""The preflight checks: pure functions of a provider's capabilities."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay import ConfigError, InvalidRequest
from smsrelay.model import Capabilities, Message
from smsrelay.preflight import check_message, check_sender, unreachable

THAI_ONLY = Capabilities(countries=frozenset({"TH"}))


def test_a_missing_sender_names_the_field_without_a_prefix_to_strip() -> None:
    with pytest.raises(ConfigError) as refused:
        check_sender(Capabilities(requires_sender=True), "kudosity", "")
    assert refused.value.field == "sender"
    assert refused.value.detail == "kudosity needs a sender, and none was given"


def test_no_sender_is_fine_where_none_is_required() -> None:
    check_sender(Capabilities(), "smskit", None)


@given(st.text(alphabet="0123456789", min_size=12, max_size=15), st.booleans())
def test_a_numeric_sender_is_a_phone_number_and_has_no_alphanumeric_cap(digits: str, plus: bool) -> None:
    check_sender(Capabilities(sender_max_chars=11), "kudosity", ("+" if plus else "") + digits)


def test_an_alphanumeric_sender_over_the_cap_is_refused() -> None:
    check_sender(Capabilities(sender_max_chars=11), "mesms", "Acme-Alerts")  # 11: fine
    with pytest.raises(ConfigError, match="12 characters"):  # letters before digits: still a name
        check_sender(Capabilities(sender_max_chars=11), "mesms", "X12345678901")
    with pytest.raises(ConfigError, match="12 characters; mesms takes at most 11"):
        check_sender(Capabilities(sender_max_chars=11), "mesms", "Acme-Alerts!")


@pytest.mark.parametrize(
    ("number", "region"),
    [("+61491570156", "AU"), ("+12025550143", "US"), ("+447400123456", "GB"), ("+6591234567", "SG")],
)
def test_a_number_outside_the_countries_is_unreachable(number: str, region: str) -> None:
    reason = unreachable(THAI_ONLY, "mesms", number)
    assert reason is not None and f"is in {region} (+" in reason
    assert number[3:] not in reason


def test_any_number_is_reachable_without_a_country_list() -> None:
    assert unreachable(Capabilities(), "kudosity", "+61491570156") is None
    assert unreachable(THAI_ONLY, "mesms", "+66812345678") is None


def test_a_sender_error_names_the_field_and_the_provider() -> None:
    with pytest.raises(ConfigError) as missing:
        check_sender(Capabilities(requires_sender=True), "kudosity", None)
    with pytest.raises(ConfigError) as too_long:
        check_sender(Capabilities(sender_max_chars=11), "mesms", "+Acme-Alerts")  # a "+" alone is no number
    for refused in (missing.value, too_long.value):
        assert refused.field == "sender"
    assert (missing.value.provider, too_long.value.provider) == ("kudosity", "mesms")
    assert too_long.value.detail == "the sender '+Acme-Alerts' is 12 characters; mesms takes at most 11"


def test_link_tracking_is_refused_only_where_asked_and_missing() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_message(Capabilities(), "kaleyra", Message("Hi", track_links=True))
    assert refused.value.field == "track_links"
    assert str(refused.value) == "kaleyra does not track links; send without track_links"
    check_message(Capabilities(), "kaleyra", Message("Hi"))
    check_message(Capabilities(link_tracking=True), "kudosity", Message("Hi", track_links=True))


def test_the_reason_lists_every_country_reached_and_the_number_s_own() -> None:
    both = Capabilities(countries=frozenset({"TH", "AU"}))
    assert unreachable(both, "mesms", "+6591234567") == (
        "mesms reaches only numbers in AU (+61), TH (+66); this number is in SG (+65)"
    )
    # A country code with no region of its own (+800, international freephone): named by its code.
    assert unreachable(THAI_ONLY, "mesms", "+80012345678") == (
        "mesms reaches only numbers in TH (+66); this number is in 001"
    )
