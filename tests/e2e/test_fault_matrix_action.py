"""The fault matrix through the Action: its entrypoint as a subprocess, on the real clock.

Each cell runs ``python -m action.main`` against a fresh Kudosity V2 emulator whose
message list lags by a small real time, with the lookup window (the step's
``env: SMSRELAY_KUDOSITY_RECONCILE_WINDOW``) longer than the lag. Then it counts
the messages each recipient got at the emulator. The goal: **0 duplicates and 0
silent losses**: every recipient's row in ``statuses`` is accepted with an id (and
stored once), failed with a reason (and stored never), or ``unknown`` with its key
in ``unresolved-keys`` (stored at most once); the exit code follows ``fail-on-error``.
Run with ``-s`` to print the matrix's counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from smsrelay.emulators.base import Fault, FaultCase
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.fixtures.action import ActionRun
from tests.fixtures.faults import print_matrix, real_time_cases

pytestmark = pytest.mark.slow

KEY = "kv2-matrix-key-0123456789"
SENDER = "61481074185"
NUMBERS = ("+61491570160", "+61491570161", "+61491570162")
READ_TIMEOUT = 1  # the step's timeout input (whole seconds); timeout_after holds an answer longer
WINDOW = 2  # seconds the step looks a lost answer up: longer than every lag below
CASES = real_time_cases(READ_TIMEOUT)

MATRIX: dict[str, Counter[str]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_matrix() -> Iterator[None]:
    yield
    print_matrix("fault matrix through the Action", MATRIX, ["accepted", "failed", "in doubt", "duplicates", "losses"])


@pytest.fixture
def kudosity(start_emulator) -> KudosityV2Emulator:
    emu: KudosityV2Emulator = start_emulator("kudosity-v2", api_keys=(KEY,))  # type: ignore[assignment]
    return emu


def step(emu: KudosityV2Emulator, **with_: str) -> dict[str, str]:
    return {
        "provider": "kudosity",
        "api-key": KEY,
        "api-url": emu.url,
        "from": SENDER,
        "to": ",".join(NUMBERS),
        "message": "Deploy 42 is live",
        "timeout": str(READ_TIMEOUT),
        "reveal-numbers": "true",  # statuses name each recipient, to match the emulator's count
    } | with_


ENV = {"SMSRELAY_KUDOSITY_RECONCILE_WINDOW": str(WINDOW)}


def stored(emu: KudosityV2Emulator) -> Counter[str]:
    return Counter("+" + str(m["recipient"]).lstrip("+") for m in emu.outbound)


def tally(run: ActionRun, counts: Counter[str]) -> Counter[str]:
    """The cell's counts from the step's outputs and the emulator's store."""
    rows = run.json("statuses")
    doubt = run.json("unresolved-keys")
    assert sorted(r["to"] for r in rows) == sorted(NUMBERS), run.stdout + run.stderr
    t: Counter[str] = Counter()
    for row in rows:
        n = counts[row["to"]]
        t["duplicates"] += max(0, n - 1)
        if row["status"] == "unknown":
            t["in doubt"] += 1
        elif row["message_id"]:
            t["accepted"] += 1
            t["losses"] += n != 1
        else:
            t["failed"] += 1
            t["losses"] += n != 0 or not row["error"]  # stored though reported failed, or no reason
    # Every row in doubt has its key in unresolved-keys: none is left without a word.
    t["losses"] += max(0, t["in doubt"] - len(doubt))
    return t


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_duplicates_and_no_silent_losses(run_action, kudosity: KudosityV2Emulator, case: FaultCase) -> None:
    kudosity.inject_case(case, method="POST", path="/v2/sms")
    # Half the cells let the step pass on a failure, so both exit-code rules are run.
    fail_on_error = case.lag == 0
    run = run_action(step(kudosity, **{"fail-on-error": str(fail_on_error).lower()}), extra=ENV)
    t = tally(run, stored(kudosity))
    MATRIX[case.name] = t
    assert t["duplicates"] == 0, (stored(kudosity), run.stdout)
    assert t["losses"] == 0, (stored(kudosity), run.stdout)
    bad = t["failed"] + t["in doubt"]
    assert run.code == (1 if bad and fail_on_error else 0), run.stdout + run.stderr


def lose_every_answer(emu: KudosityV2Emulator) -> Fault:
    """Each send is accepted but its answer lost, and every lookup by key fails: in doubt."""
    emu.inject("reset_after", method="POST", path="/v2/sms", times=len(NUMBERS))
    return emu.inject("status", status=503, method="GET", path="/v2/sms", times=1000)


@pytest.mark.parametrize("fail_on_error", [True, False], ids=["fail-on-error", "not fail-on-error"])
def test_what_cannot_be_looked_up_is_in_doubt_never_resent(
    run_action, kudosity: KudosityV2Emulator, fail_on_error: bool
) -> None:
    lose_every_answer(kudosity)
    run = run_action(step(kudosity, **{"fail-on-error": str(fail_on_error).lower()}), extra=ENV)
    t = tally(run, stored(kudosity))
    MATRIX[f"reset after accept, lookups fail, fail-on-error {str(fail_on_error).lower()}"] = t
    assert t["in doubt"] == len(NUMBERS) and t["duplicates"] == t["losses"] == 0, run.stdout
    assert stored(kudosity) == Counter(dict.fromkeys(NUMBERS, 1))  # sent once, never again
    assert len(set(run.json("unresolved-keys"))) == len(NUMBERS)
    assert run.code == (1 if fail_on_error else 0), run.stdout + run.stderr


def test_rerunning_the_step_with_the_same_message_ref_sends_nothing_twice(
    run_action, kudosity: KudosityV2Emulator
) -> None:
    # The first run leaves everything in doubt. The re-run (same message-ref, so the same
    # keys), with the provider answering again, settles them by key and resends none.
    lookups_fail = lose_every_answer(kudosity)
    first = run_action(step(kudosity, **{"message-ref": "deploy-42"}), extra=ENV)
    assert first.code == 1 and len(first.json("unresolved-keys")) == len(NUMBERS), first.stdout
    with kudosity.lock:  # the provider's list answers again
        kudosity.faults.remove(lookups_fail)
    again = run_action(step(kudosity, **{"message-ref": "deploy-42"}), extra=ENV)
    assert again.code == 0 and again.json("unresolved-keys") == [], again.stdout + again.stderr
    assert stored(kudosity) == Counter(dict.fromkeys(NUMBERS, 1)), again.stdout
    assert {r["message_id"] for r in again.json("statuses")} == {m["id"] for m in kudosity.outbound}
    # And a third run, everything settled, sends nothing either.
    third = run_action(step(kudosity, **{"message-ref": "deploy-42"}), extra=ENV)
    assert third.code == 0 and stored(kudosity) == Counter(dict.fromkeys(NUMBERS, 1)), third.stdout


def test_a_window_that_is_not_a_number_fails_the_step_naming_it(run_action, kudosity: KudosityV2Emulator) -> None:
    run = run_action(step(kudosity), extra={"SMSRELAY_KUDOSITY_RECONCILE_WINDOW": "a minute"})
    assert run.code == 2, run.stdout + run.stderr
    assert any("expected a number, got 'a minute'" in e for e in run.errors), run.stdout
    # The step's env: set it, so the error names that variable, not the provider-options input.
    assert "Environment variable 'SMSRELAY_KUDOSITY_RECONCILE_WINDOW'" in run.stdout, run.stdout
    assert kudosity.outbound == []


def test_the_provider_independent_variable_sets_the_window_too(run_action, kudosity: KudosityV2Emulator) -> None:
    # SMSRELAY_RECONCILE_WINDOW, as the core reads it; SMSRELAY_KUDOSITY_… would win over it.
    run = run_action(step(kudosity), extra={"SMSRELAY_RECONCILE_WINDOW": "a minute"})
    assert run.code == 2 and "Environment variable 'SMSRELAY_RECONCILE_WINDOW'" in run.stdout, run.stdout
    assert kudosity.outbound == []
