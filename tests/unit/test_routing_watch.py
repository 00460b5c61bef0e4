"""A routed send records the ids its provider reports by (Kaleyra, Kudosity V1) once, with its account.

Real emulators on loopback and a real SQLite inbox; the inbox's ``watch`` is wrapped to
count the writes (one per account's send), and the watch table is read back.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from smsrelay import Client, ManualClock, Router, routing_from_mapping
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.inbox import Inbox, open_inbox
from tests.fixtures.kaleyra import KALEYRA_SID
from tests.fixtures.kudosity import SENDER, V1_KEY, V1_SECRET

INDIAN, INDIAN_2, AUSTRALIAN = "+919876543210", "+919123456789", "+61491570156"

Call = tuple[str, dict[str, str | None], str | None]


def _counting(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every ``watch`` write the inbox takes: (provider, ids → phone, account)."""
    calls: list[Call] = []
    real = inbox.watch

    def watch(provider: str, messages: Mapping[str, str | None], *, account: str | None = None) -> None:
        calls.append((provider, dict(messages), account))
        real(provider, messages, account=account)

    monkeypatch.setattr(inbox, "watch", watch)
    return calls


def _rows(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT provider, message_id, phone, account FROM watch ORDER BY provider").fetchall()


@pytest.fixture
def config(kaleyra_emulator: KaleyraEmulator, kudosity_v1_emulator: KudosityV1Emulator) -> dict[str, Any]:
    kaleyra = {"provider": "kaleyra", "api_key": "test-key", "sid": KALEYRA_SID, "sender": "KLRHXA"}
    return {
        "accounts": {
            "in": {**kaleyra, "base_url": kaleyra_emulator.url},
            "au": {
                "provider": "kudosity",
                "api": "v1",
                "api_key": V1_KEY,
                "api_secret": V1_SECRET,
                "sender": SENDER,
                "base_url": kudosity_v1_emulator.url,
            },
        },
        "routes": [{"match": {"country": "IN"}, "accounts": ["in"]}, {"accounts": ["au"]}],
    }


def test_a_routed_send_writes_each_watched_id_once_with_its_account(
    tmp_path: Path, clock: ManualClock, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "inbox.db"
    inbox = open_inbox(path, clock=clock)
    calls = _counting(inbox, monkeypatch)
    with Router(routing_from_mapping(config, env={}), clock=clock, env={}, inbox=inbox) as router:
        sent = router.send([INDIAN, INDIAN_2, AUSTRALIAN], "Your parcel is on its way")
    inbox.close()
    assert sent.all_accepted and [r.account for r in sent.results] == ["in", "in", "au"]
    ids = {r.to: r.result.message_id or "" for r in sent.results}
    # One write per account's send, each naming its account: never a row without one.
    assert sorted(calls, key=lambda c: c[0]) == [
        ("kaleyra", {ids[INDIAN]: INDIAN, ids[INDIAN_2]: INDIAN_2}, "in"),
        ("kudosity", {ids[AUSTRALIAN]: AUSTRALIAN}, "au"),
    ]
    assert sorted(_rows(path)) == sorted(
        [
            ("kaleyra", ids[INDIAN], INDIAN, "in"),
            ("kaleyra", ids[INDIAN_2], INDIAN_2, "in"),
            ("kudosity", ids[AUSTRALIAN], AUSTRALIAN, "au"),
        ]
    )


def test_a_plain_client_records_its_sends_without_an_account(
    tmp_path: Path, clock: ManualClock, kaleyra_emulator: KaleyraEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "inbox.db"
    inbox = open_inbox(path, clock=clock)
    calls = _counting(inbox, monkeypatch)
    settings: dict[str, Any] = {
        "api_key": "test-key",
        "sid": KALEYRA_SID,
        "sender": "KLRHXA",
        "base_url": kaleyra_emulator.url,
    }
    with Client("kaleyra", clock=clock, env={}, inbox=inbox, **settings) as client:
        result = client.send(INDIAN, "Your parcel is on its way")
    inbox.close()
    mid = result.results[0].message_id or ""
    assert calls == [("kaleyra", {mid: INDIAN}, None)]
    assert _rows(path) == [("kaleyra", mid, INDIAN, None)]


def test_an_inbox_that_cannot_record_is_a_warning_and_the_send_stands(
    tmp_path: Path,
    clock: ManualClock,
    config: dict[str, Any],
    kaleyra_emulator: KaleyraEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = open_inbox(tmp_path / "inbox.db", clock=clock)

    def broken(provider: str, messages: Mapping[str, str | None], *, account: str | None = None) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(inbox, "watch", broken)
    with (
        caplog.at_level(logging.WARNING),
        Router(routing_from_mapping(config, env={}), clock=clock, env={}, inbox=inbox) as router,
    ):
        sent = router.send([INDIAN], "Your parcel is on its way")
    inbox.close()
    # The message is sent once; only its polled reports are at stake, and the log names no number.
    assert sent.all_accepted and len(kaleyra_emulator.received("POST")) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["in: could not record 1 sent message(s) in the inbox: database is locked"]
    assert INDIAN not in caplog.text
