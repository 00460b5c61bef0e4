"""The fault matrix through ``SendSmsOperator``, then a task retry.

Each cell executes the operator against a fresh Kudosity V2 emulator on the real clock,
through a real Airflow connection (``AIRFLOW_CONN_*``) whose extra sets the lookup window
(``reconcile_window``) longer than the emulator's list lag. The try may end in doubt
(``AirflowException``); then Airflow's retry runs, with the same task state store and
``try_number`` 2. Then the messages each recipient got are counted at the emulator. The
goal: **0 duplicates and 0 silent losses** after the retry: every recipient accepted with
its id (stored once), failed with a reason (stored never), or in doubt in the task state
(stored at most once, never sent again). Run with ``-s`` to print the matrix's counts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.airflow

from airflow.sdk import Connection  # noqa: E402
from smsrelay_airflow._compat import AirflowException, AirflowFailException  # noqa: E402
from smsrelay_airflow.operators.send import STATE_KEY, SendSmsOperator  # noqa: E402

from smsrelay.client import idempotency_key  # noqa: E402
from smsrelay.emulators.base import Fault, FaultCase  # noqa: E402
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator  # noqa: E402
from smsrelay.errors import ProviderServerError  # noqa: E402
from tests.fixtures.faults import print_matrix, real_time_cases  # noqa: E402
from tests.fixtures.kudosity import SENDER, V2_KEY  # noqa: E402
from tests.unit.test_airflow_provider import TI, StateStore, context  # noqa: E402

NUMBERS = ("+61491575100", "+61491575101", "+61491575102")
BODY = "Nightly load finished"
READ_TIMEOUT = 0.5  # the connection's; timeout_after holds an answer twice as long
WINDOW = 2  # the connection's reconcile_window: longer than every lag below
CASES = real_time_cases(READ_TIMEOUT)

MATRIX: dict[str, Counter[str]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_matrix() -> Iterator[None]:
    yield
    print_matrix(
        "fault matrix through SendSmsOperator, after a retry",
        MATRIX,
        ["accepted", "failed", "in doubt", "duplicates", "losses", "retried"],
    )


@pytest.fixture
def kudosity(monkeypatch: pytest.MonkeyPatch, start_emulator: Any) -> KudosityV2Emulator:
    """``smsrelay_default`` -> a Kudosity V2 emulator; the window comes from the connection's extra."""
    emu: KudosityV2Emulator = start_emulator("kudosity-v2", api_keys=(V2_KEY,))  # type: ignore[assignment]
    extra = {"api": "v2", "sender": SENDER, "timeout": READ_TIMEOUT, "retries": 3, "reconcile_window": WINDOW}
    conn = Connection(
        conn_id="smsrelay_default",
        conn_type="smsrelay_kudosity",
        host=emu.url,
        password=V2_KEY,
        extra=json.dumps(extra),
    )
    monkeypatch.setenv("AIRFLOW_CONN_SMSRELAY_DEFAULT", conn.as_json())
    return emu


def stored(emu: KudosityV2Emulator) -> Counter[str]:
    return Counter("+" + str(m["recipient"]).lstrip("+") for m in emu.outbound)


def execute(store: StateStore, try_number: int) -> dict[str, Any] | None:
    """One try of the task, as a fresh operator (a retry runs in a new process); None if it raised."""
    op = SendSmsOperator(task_id="send", to=list(NUMBERS), message=BODY)
    try:
        return op.execute(context(TI(try_number=try_number), store))
    except AirflowException:  # in doubt: Airflow retries it (AirflowFailException would not)
        return None


def tally(emu: KudosityV2Emulator, store: StateStore) -> Counter[str]:
    """The cell's counts from the task state (what a further retry would act on) and the emulator."""
    rows = store.rows()
    counts = stored(emu)
    refs = {str(m["recipient"]).lstrip("+"): m.get("message_ref") for m in emu.outbound}
    t: Counter[str] = Counter()
    assert sorted(r["to"] for r in rows) == sorted(NUMBERS)
    for row in rows:
        n = counts[row["to"]]
        t["duplicates"] += max(0, n - 1)
        if row["message_id"]:
            t["accepted"] += 1
            t["losses"] += n != 1
        elif row["status"] == "unknown":
            t["in doubt"] += 1
            # Its key is in the task state, and is the one the provider holds.
            assert row["key"] == idempotency_key(store.get(STATE_KEY)["key"], row["to"], BODY)
            t["losses"] += n == 1 and refs[row["to"].lstrip("+")] != row["key"]
        else:
            t["failed"] += 1
            t["losses"] += n != 0 or not row["error"]
    return t


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_duplicates_and_no_silent_losses_after_a_retry(kudosity: KudosityV2Emulator, case: FaultCase) -> None:
    kudosity.inject_case(case, method="POST", path="/v2/sms")
    store = StateStore()
    first = execute(store, 1)
    # Airflow retries a try that raised; a retry of one that succeeded must send nothing either.
    second = execute(store, 2)
    t = tally(kudosity, store)
    t["retried"] = int(first is None)  # try 1 raised, so Airflow retried it
    MATRIX[case.name] = t
    assert t["duplicates"] == 0 and t["losses"] == 0, (stored(kudosity), store.data)
    assert second is not None and t["accepted"] == len(NUMBERS), store.data
    if first is not None:
        assert second["message_ids"] == first["message_ids"]


def lose_every_answer(emu: KudosityV2Emulator) -> Fault:
    """Each send is accepted but its answer lost, and every lookup by key fails: in doubt."""
    emu.inject("reset_after", method="POST", path="/v2/sms", times=len(NUMBERS))
    return emu.inject("status", status=503, method="GET", path="/v2/sms", times=1000)


def test_in_doubt_messages_stay_in_the_task_state_and_no_retry_resends_them(kudosity: KudosityV2Emulator) -> None:
    lookups_fail = lose_every_answer(kudosity)
    store = StateStore()
    assert execute(store, 1) is None  # in doubt: the try fails, for Airflow to retry
    t = tally(kudosity, store)
    MATRIX["reset after accept, lookups fail: try 1"] = t
    assert t["in doubt"] == len(NUMBERS) and t["duplicates"] == t["losses"] == 0, store.data

    # The retry asks the provider by key first; the lookup fails too, so the try fails
    # (for Airflow to retry later) having sent nothing.
    posts = len(kudosity.received("POST", "/v2/sms"))
    with pytest.raises(ProviderServerError):
        SendSmsOperator(task_id="send", to=list(NUMBERS), message=BODY).execute(context(TI(try_number=2), store))
    assert len(kudosity.received("POST", "/v2/sms")) == posts
    t = tally(kudosity, store)
    MATRIX["reset after accept, lookups fail: try 2"] = t
    assert t["in doubt"] == len(NUMBERS) and t["duplicates"] == t["losses"] == 0, store.data

    with kudosity.lock:  # the provider's list answers again: a cleared task settles them by key
        kudosity.faults.remove(lookups_fail)
    third = execute(store, 3)
    t = tally(kudosity, store)
    MATRIX["reset after accept, lookups fail: try 3, lookups back"] = t
    assert third is not None and t["accepted"] == len(NUMBERS), store.data
    assert t["duplicates"] == 0 and stored(kudosity) == Counter(dict.fromkeys(NUMBERS, 1))
    assert sorted(third["message_ids"]) == sorted(m["id"] for m in kudosity.outbound)


def test_a_window_that_is_not_a_number_fails_the_task_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"api": "v2", "sender": SENDER, "reconcile_window": "a minute"}
    conn = Connection(conn_id="slow_sms", conn_type="smsrelay_kudosity", password=V2_KEY, extra=json.dumps(extra))
    monkeypatch.setenv("AIRFLOW_CONN_SLOW_SMS", conn.as_json())
    op = SendSmsOperator(task_id="send", sms_conn_id="slow_sms", to=list(NUMBERS), message=BODY)
    # A bad setting is not worth a retry: the task fails for good, naming the connection and field.
    with pytest.raises(
        AirflowFailException, match=r"connection 'slow_sms', field 'reconcile_window': expected a number"
    ):
        op.execute(context(TI(), StateStore()))
