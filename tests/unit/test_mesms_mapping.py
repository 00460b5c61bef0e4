"""ME-SMS's status tables and cursors, without the network."""

from __future__ import annotations

import pytest

from smsrelay.config import ProviderSettings
from smsrelay.emulators.mesms import MESSAGE_STATUSES, RECIPIENT_STATUSES
from smsrelay.errors import InvalidRequest
from smsrelay.model import Status
from smsrelay.providers.mesms import MESSAGE_STATUS, STATUS, MeSmsProvider


def test_every_documented_status_has_a_mapping() -> None:
    assert set(STATUS) == set(RECIPIENT_STATUSES)
    assert set(MESSAGE_STATUS) == set(MESSAGE_STATUSES)
    assert STATUS["success"] == Status.DELIVERED and STATUS["pending"] == Status.QUEUED
    assert {s for s, v in STATUS.items() if v == Status.REJECTED} == {"invalid", "blocked"}
    assert STATUS["timeout"] == Status.UNKNOWN and STATUS["timeout"].final


@pytest.mark.parametrize("cursor", ["abc", "mesms1.!!!", "mesms1.e30=", "kudosity:123"])
def test_a_foreign_or_broken_cursor_is_a_clear_error(cursor: str) -> None:
    provider = MeSmsProvider(ProviderSettings("mesms", api_key="k", base_url="http://127.0.0.1:9"))
    with pytest.raises(InvalidRequest, match="not an ME-SMS cursor"):
        provider.poll_events(cursor)


def test_a_cursor_round_trips() -> None:
    state = {"seen": "2026-01-01T00:00:00+00:00", "at": ["u1"], "open": [["u1", 17]]}
    provider = MeSmsProvider(ProviderSettings("mesms", api_key="k"))
    assert provider._decode(provider._encode(state)) == state
