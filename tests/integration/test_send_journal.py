"""A key is used once, across calls, processes and re-runs.

Against the Kudosity V2 emulator (no native idempotency) over loopback: the send
journal in the inbox's database (SQLite, and PostgreSQL where installed) and, without
one, the lookup by key before sending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from smsrelay import AmbiguousSend, Client, Message, Recipient
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.inbox import open_inbox
from smsrelay.journal import SendJournal

NUMBERS = ["+61491570156", "+61491570157", "+61491570158"]


def sent(emu: KudosityV2Emulator) -> Counter[str]:
    return Counter(str(m["recipient"]) for m in emu.outbound)


def test_a_repeated_key_returns_the_recorded_result_and_sends_nothing(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, inbox_url: str
) -> None:
    first = kudosity_v2_factory(journal=inbox_url).send(NUMBERS, "Shipped", key="order-1-shipped")
    posts = len(kudosity_v2_emulator.received("POST", "/v2/sms"))
    # Another process (a new client on the same database) repeats the send.
    again = kudosity_v2_factory(journal=inbox_url).send(NUMBERS, "Shipped", key="order-1-shipped")
    assert again.message_ids == first.message_ids and again.all_accepted
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == posts == 3
    assert kudosity_v2_emulator.received("GET", "/v2/sms") == []  # the journal answered, not the provider
    # A new recipient under the same key context is sent; the others are not.
    more = kudosity_v2_factory(journal=inbox_url).send([*NUMBERS, "+61491570159"], "Shipped", key="order-1-shipped")
    assert more.all_accepted and sent(kudosity_v2_emulator) == Counter(
        n.lstrip("+") for n in [*NUMBERS, "+61491570159"]
    )


def test_a_key_in_flight_after_a_crash_is_reconciled_before_anything_is_sent(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, tmp_path
) -> None:
    url = str(tmp_path / "state.db")
    # A crash after the request reached Kudosity: the key is claimed, the outcome never recorded.
    journal = SendJournal(open_inbox(url))
    claimed = kudosity_v2_factory(journal=False).send(
        [Recipient("+61491570156", key="k-crashed")], "Hi", on_doubt="report"
    )
    assert journal.begin("kudosity", ["k-crashed"]).fresh == ["k-crashed"]
    # And a crash before the request was written: claimed, never sent.
    assert journal.begin("kudosity", ["k-never-sent"]).fresh == ["k-never-sent"]
    journal.inbox.close()
    kudosity_v2_emulator.advance(10)  # the re-run comes later: both are past the list's lag
    rerun = kudosity_v2_factory(journal=url).send_many(
        Message("Hi"), [Recipient("+61491570156", key="k-crashed"), Recipient("+61491570157", key="k-never-sent")]
    )
    assert rerun.all_accepted
    assert rerun.results[0].message_id == claimed.results[0].message_id  # found, not resent
    assert sent(kudosity_v2_emulator) == Counter({"61491570156": 1, "61491570157": 1})


def test_an_in_doubt_key_stays_claimed_and_a_later_send_settles_it(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, tmp_path
) -> None:
    url = str(tmp_path / "state.db")
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    with pytest.raises(AmbiguousSend):
        kudosity_v2_factory(journal=url).send("+61491570156", "Hi", key="k-doubt")
    kudosity_v2_emulator.faults.clear()
    later = kudosity_v2_factory(journal=url).send("+61491570156", "Hi", key="k-doubt")
    assert later.all_accepted and len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 1


def test_a_key_that_was_not_sent_is_released_and_sent_next_time(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, tmp_path
) -> None:
    url = str(tmp_path / "state.db")
    kudosity_v2_emulator.inject("rate_limit", method="POST", path="/v2/sms", times=10)
    [throttled] = kudosity_v2_factory(journal=url, retries=1).send("+61491570156", "Hi", key="k-later").results
    assert throttled.retryable and kudosity_v2_emulator.outbound == []
    kudosity_v2_emulator.faults.clear()
    assert kudosity_v2_factory(journal=url).send("+61491570156", "Hi", key="k-later").all_accepted
    assert sent(kudosity_v2_emulator) == Counter({"61491570156": 1})


def test_without_a_journal_a_callers_key_is_looked_up_before_sending(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    # A re-run of a GitHub workflow: a fresh container, no state, the same key.
    first = kudosity_v2_factory().send(NUMBERS, "Deployed", key="deploy-42")
    assert len(kudosity_v2_emulator.received("GET", "/v2/sms")) == len(NUMBERS)  # the cost: one GET a message
    kudosity_v2_emulator.advance(10)
    rerun = kudosity_v2_factory().send(NUMBERS, "Deployed", key="deploy-42")
    assert rerun.message_ids == first.message_ids
    assert sent(kudosity_v2_emulator) == Counter(n.lstrip("+") for n in NUMBERS)
    # Without a key of the caller's there is nothing to look up: no GET.
    before = len(kudosity_v2_emulator.received("GET", "/v2/sms"))
    kudosity_v2_factory().send(NUMBERS[0], "Hello")
    assert len(kudosity_v2_emulator.received("GET", "/v2/sms")) == before


def test_reconcile_settles_a_key_in_doubt_and_records_it(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, tmp_path
) -> None:
    url = str(tmp_path / "state.db")
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    with pytest.raises(AmbiguousSend) as info:
        kudosity_v2_factory(journal=url).send("+61491570156", "Hi", key="k-settle")
    kudosity_v2_emulator.faults.clear()
    client = kudosity_v2_factory(journal=url)
    found = client.reconcile(info.value.keys)
    assert [r.message_id for r in found.values()] == [m["id"] for m in kudosity_v2_emulator.outbound]
    gets = len(kudosity_v2_emulator.received("GET", "/v2/sms"))
    assert client.send("+61491570156", "Hi", key="k-settle").message_ids == [r.message_id for r in found.values()]
    assert len(kudosity_v2_emulator.received("GET", "/v2/sms")) == gets  # the journal knew
    assert len(kudosity_v2_emulator.outbound) == 1


def test_compaction_forgets_accepted_keys_after_the_dedupe_window_but_keeps_those_in_flight(tmp_path) -> None:
    from datetime import timedelta

    from smsrelay import ManualClock
    from smsrelay.model import RecipientResult, Status

    clock = ManualClock()
    inbox = open_inbox(tmp_path / "state.db", clock=clock)
    try:
        journal = SendJournal(inbox)
        journal.begin("kudosity", ["done", "flight"])
        journal.finish("kudosity", [RecipientResult("+61491570156", Status.QUEUED, "m1", key="done")])
        clock.advance((inbox.dedupe_window + timedelta(days=1)).total_seconds())
        inbox.compact()
        claim = journal.begin("kudosity", ["done", "flight"])
        assert claim.fresh == ["done"] and claim.in_flight == ["flight"]
    finally:
        inbox.close()
