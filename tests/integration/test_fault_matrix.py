"""The fault matrix: every provider's core ``send_many`` against every network fault and list lag.

Each cell runs on a fresh emulator (the kit's ``fault_matrix()`` and ``inject_case``),
then counts the messages each recipient got at the emulator. The goal: **0 duplicates
and 0 silent losses**. Every message is accepted with its id (and stored once), failed
or refused with a reason (and stored never), or reported in doubt with its key (at
most once). Lags are seconds on the emulators' manual clock, so the suite never waits
for them; only ``timeout after accept`` takes real time (half a second), because a
socket's read timeout is real.

The sandbox is embedded (no HTTP), so no network fault can reach it; it is not a row.
Run with ``-s`` to print the matrix's counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from smsrelay import Client, ManualClock, Message, SendResult
from smsrelay.emulators.base import Emulator, FaultCase, fault_matrix
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.kaleyra import KALEYRA_SECRET, KALEYRA_SID
from tests.fixtures.kudosity import SENDER, V1_KEY, V1_SECRET, V2_KEY
from tests.fixtures.smskit import SMSKIT_KEY

READ_TIMEOUT = 0.25  # the client's; timeout_after holds an answer twice as long
CASES = fault_matrix(timeout=2 * READ_TIMEOUT)


@dataclass(frozen=True)
class Row:
    """How to run one provider: its emulator, its client settings, its send path, its count."""

    provider: str
    emulator: type[Emulator]
    emulator_options: dict[str, Any]
    settings: dict[str, Any]
    send_path: str
    numbers: tuple[str, ...]
    count: Callable[[Any], Counter[str]]


def digits(number: str) -> str:
    return number.lstrip("+")


ROWS = [
    Row(
        "kudosity-v2",
        KudosityV2Emulator,
        {"api_keys": (V2_KEY,)},
        {"provider": "kudosity", "api": "v2", "api_key": V2_KEY, "sender": SENDER, "rate_limit": 1000},
        "/v2/sms",
        tuple(f"+6149157{n:04d}" for n in range(100, 104)),
        lambda emu: Counter(digits(str(m["recipient"])) for m in emu.outbound),
    ),
    Row(
        "kudosity-v1",
        KudosityV1Emulator,
        {"credentials": {V1_KEY: V1_SECRET}},
        {"provider": "kudosity", "api": "v1", "api_key": V1_KEY, "api_secret": V1_SECRET, "sender": SENDER},
        r"/send-sms\.json",
        tuple(f"+6149157{n:04d}" for n in range(100, 104)),
        lambda emu: Counter(digits(str(n)) for m in emu.messages.values() for n in m["recipients"]),
    ),
    Row(
        "kaleyra",
        KaleyraEmulator,
        {"sids": (KALEYRA_SID,)},
        {"provider": "kaleyra", "api_key": "test-key", "sid": KALEYRA_SID, "sender": "KLRHXA"}
        | {"webhook_secret": KALEYRA_SECRET},
        rf"/v1/{KALEYRA_SID}/messages",
        tuple(f"+91987651{n:04d}" for n in range(100, 104)),
        lambda emu: Counter(digits(m.recipient) for m in emu.messages.values()),
    ),
    Row(
        "mesms",
        MeSmsEmulator,
        {},
        {"provider": "mesms", "api_key": "test-key", "sender": "Acme"},
        "/api/v2/sms/send",
        tuple(f"+6681234{n:04d}" for n in range(110, 114)),
        lambda emu: Counter(digits(n) for b in emu.batches.values() for n in b.msisdns),
    ),
    Row(
        "smskit",
        SmsKitEmulator,
        {},
        {"provider": "smskit", "api_key": SMSKIT_KEY},
        "/api/sms/send",
        tuple(f"+2547123401{n:02d}" for n in range(10, 14)),
        lambda emu: Counter(digits(str(j["recipient"])) for j in emu.jobs.values()),
    ),
]

MATRIX: dict[tuple[str, str], Counter[str]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_matrix() -> Iterator[None]:
    yield
    if not MATRIX:
        return
    print("\nfault matrix: messages stored per cell (accepted / failed or refused / in doubt; duplicates, losses)")
    for (row, case), c in sorted(MATRIX.items()):
        print(
            f"  {row:12} {case:48} accepted {c['accepted']} · not sent {c['not sent']} · in doubt {c['in doubt']}"
            f" · duplicates {c['duplicates']} · silent losses {c['losses']}"
        )


def check(result: SendResult, stored: Counter[str]) -> Counter[str]:
    """The cell's tally; fails on a duplicate or a silent loss."""
    tally: Counter[str] = Counter()
    for r in result.results:
        n = stored[digits(r.to)]
        tally["duplicates"] += max(0, n - 1)
        if r.accepted:
            tally["accepted"] += 1
            tally["losses"] += n != 1 or not r.message_id
        elif r.in_doubt:
            tally["in doubt"] += 1
            tally["losses"] += not r.key
        else:
            tally["not sent"] += 1
            tally["losses"] += n != 0 or not r.error  # stored though reported unsent, or no reason
    return tally


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("row", ROWS, ids=[r.provider for r in ROWS])
def test_no_duplicates_and_no_silent_losses(row: Row, case: FaultCase) -> None:
    clock = ManualClock()
    with row.emulator(clock=clock, **row.emulator_options) as emu:
        emu.inject_case(case, method="POST", path=row.send_path)
        settings = {**row.settings, "base_url": emu.url, "timeout": READ_TIMEOUT, "retries": 3}
        with Client(clock=clock, env={}, on_doubt="report", **settings) as client:
            result = client.send_many(Message("Your parcel is on its way"), list(row.numbers))
        stored = row.count(emu)
    assert len(result.results) == len(row.numbers)
    tally = check(result, stored)
    MATRIX[(row.provider, case.name)] = tally
    assert tally["duplicates"] == 0, (stored, result.results)
    assert tally["losses"] == 0, (stored, result.results)
    if not case.faults:
        assert tally["accepted"] == len(row.numbers)


def test_a_network_that_refuses_the_connection_sends_nothing_and_says_so() -> None:
    # The one fault where the request is certainly never written: nothing listens on the port.
    with Client("kudosity", api_key=V2_KEY, sender=SENDER, base_url="http://127.0.0.1:9", retries=2, env={}) as c:
        result = c.send_many(Message("Hi"), ["+61491570100"], on_doubt="report")
    [r] = result.results
    assert r.retryable and not r.in_doubt and "not sent" in (r.error or "")
