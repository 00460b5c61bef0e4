"""The preflight checks: pure functions of a provider's capabilities."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay import ConfigError
from smsrelay.model import Capabilities
from smsrelay.preflight import check_sender, unreachable

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
