"""``smsrelay reconcile`` as a subprocess: settle messages in doubt by key, or from the send journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from smsrelay import AmbiguousSend, Client
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.inbox import open_inbox
from smsrelay.journal import SendJournal
from tests.fixtures.kudosity import SENDER, V2_KEY


def reconcile(emu: KudosityV2Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSRELAY_")}
    env |= {"SMSRELAY_PROVIDER": "kudosity", "SMSRELAY_KUDOSITY_API_KEY": V2_KEY, "SMSRELAY_KUDOSITY_SENDER": SENDER}
    cmd = [sys.executable, "-m", "smsrelay", "reconcile", "--base-url", emu.url, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def in_doubt(factory: Callable[..., Client], emu: KudosityV2Emulator, key: str, **kw: object) -> list[str]:
    """Send once so that it is accepted but cannot be confirmed; return the keys in doubt."""
    emu.inject("reset_after", method="POST", path="/v2/sms")
    emu.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    with pytest.raises(AmbiguousSend) as info:
        factory(**kw).send("+61491570156", "Hi", key=key)
    emu.faults.clear()
    return info.value.keys


def test_reconcile_by_key_finds_what_was_accepted(kudosity_v2_factory, kudosity_v2_emulator) -> None:
    keys = in_doubt(kudosity_v2_factory, kudosity_v2_emulator, "order-7")
    p = reconcile(kudosity_v2_emulator, *keys, "no-such-key", "--json")
    assert p.returncode == 1, p.stderr  # one key was not found
    rows = {r["key"]: r for r in json.loads(p.stdout)["results"]}
    assert rows[keys[0]]["message_id"] == kudosity_v2_emulator.outbound[0]["id"]
    assert rows["no-such-key"] == {"key": "no-such-key", "found": False}
    assert len(kudosity_v2_emulator.outbound) == 1  # reconciling never sends


def test_reconcile_with_the_journal_settles_its_keys_in_flight(
    kudosity_v2_factory, kudosity_v2_emulator, tmp_path
) -> None:
    journal = str(tmp_path / "journal.db")
    keys = in_doubt(kudosity_v2_factory, kudosity_v2_emulator, "order-8", journal=journal)
    p = reconcile(kudosity_v2_emulator, "--journal", journal)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{keys[0]}  accepted" in p.stdout and "1/1 found" in p.stdout
    inbox = open_inbox(journal)
    try:
        assert SendJournal(inbox).in_flight("kudosity") == []
    finally:
        inbox.close()


def test_reconcile_without_keys_or_a_journal_is_bad_input(kudosity_v2_emulator) -> None:
    p = reconcile(kudosity_v2_emulator)
    assert p.returncode == 2 and "no keys" in p.stderr
