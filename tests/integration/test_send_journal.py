"""A key is used once, across calls, processes and re-runs.

Against the Kudosity V2 emulator (no native idempotency) over loopback: the send
journal in the inbox's database (SQLite, and PostgreSQL where installed) and, without
one, the lookup by key before sending.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from smsrelay import AmbiguousSend, Client, Message, Recipient, TransportError
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.inbox import open_inbox
from smsrelay.journal import Claim, SendJournal

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


class RivalClaims(SendJournal):
    """The journal as it is met when another process claims ``taken`` between a send's look-up and its claim."""

    def __init__(self, url: str, taken: str) -> None:
        super().__init__(open_inbox(url))
        self.rival = SendJournal(open_inbox(url))
        self.taken: str | None = taken

    def begin(self, provider: str, keys: Sequence[str]) -> Claim:
        if self.taken in keys:
            assert self.rival.begin(provider, [self.taken]).fresh == [self.taken]
            self.taken = None
        return super().begin(provider, keys)


def test_a_key_another_send_claims_after_the_look_up_stays_theirs(
    kudosity_v1_factory: Callable[..., Client], kudosity_v1_emulator: KudosityV1Emulator, tmp_path
) -> None:
    keys = [f"k-{i}" for i in range(len(NUMBERS))]
    journal = RivalClaims(str(tmp_path / "state.db"), taken=keys[1])
    try:
        result = kudosity_v1_factory(journal=journal).send_many(
            Message("Hi"), [Recipient(n, key=k) for n, k in zip(NUMBERS, keys, strict=True)], on_doubt="report"
        )
    finally:
        journal.rival.inbox.close()
        journal.inbox.close()
    # One request for the two this send claimed; the rival's key is in doubt, never sent by this one.
    assert [r.accepted for r in result.results] == [True, False, True]
    assert [r.key for r in result.in_doubt] == [keys[1]]
    sends = kudosity_v1_emulator.received("POST", r"/send-sms\.json")
    assert [sorted(r.form()["to"].split(",")) for r in sends] == [[NUMBERS[0].lstrip("+"), NUMBERS[2].lstrip("+")]]


# A send that is killed mid-way: 200 personalised messages on Kudosity V1 (one request each), 4 in flight.
KILLED = """
import sys
from smsrelay import Client, Message, Recipient

url, journal = sys.argv[1], sys.argv[2]
client = Client("kudosity", api="v1", api_key=sys.argv[3], api_secret=sys.argv[4], sender="61481074185",
                base_url=url, journal=journal, concurrency=4, rate_limit=1000, env={})
recipients = [Recipient(f"+614915{i:05d}", {"name": f"n{i}"}, key=f"k-{i}") for i in range(200)]
client.send_many(Message("Hi {{ name }}"), recipients)
"""


def test_a_send_killed_mid_way_leaves_in_flight_only_the_requests_its_workers_held(tmp_path) -> None:
    import subprocess
    import sys
    import time

    from tests.fixtures.kudosity import V1_KEY, V1_SECRET

    url = str(tmp_path / "state.db")
    with KudosityV1Emulator(credentials={V1_KEY: V1_SECRET}, latency=0.05) as emu:
        proc = subprocess.Popen([sys.executable, "-c", KILLED, emu.url, url, V1_KEY, V1_SECRET])
        try:
            deadline = time.monotonic() + 60
            while len(emu.received("POST", r"/send-sms\.json")) < 40 and proc.poll() is None:
                assert time.monotonic() < deadline, "the send did not start"
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
        sent_count = len(emu.received("POST", r"/send-sms\.json"))
    journal = SendJournal(open_inbox(url))
    try:
        in_flight = journal.in_flight("kudosity")
        claim = journal.known("kudosity", [f"k-{i}" for i in range(200)])
    finally:
        journal.inbox.close()
    assert 40 <= sent_count < 200
    # Keys are claimed as workers take their requests: in flight are at most what the 4 workers held
    # and what had answered but was not yet recorded, not the 200 the send had prepared.
    assert 1 <= len(in_flight) <= 8, in_flight
    assert len(claim.recorded) + len(claim.in_flight) <= sent_count + 4


def test_claims_and_outcomes_of_many_keys_on_each_backend(inbox_url: str) -> None:
    """Keys go to the database a few statements per 500: past the batch edges, every key is still its own."""
    from smsrelay.model import RecipientResult, Status

    journal = SendJournal(open_inbox(inbox_url))
    try:
        keys = [f"k-{i}" for i in range(1203)]
        first = journal.begin("kudosity", keys[:600])
        assert first.fresh == keys[:600]
        journal.finish(
            "kudosity",
            [RecipientResult(f"+61491{i:06d}", Status.QUEUED, f"m-{i}", 1, key=k) for i, k in enumerate(keys[:300])]
            + [RecipientResult(f"+61491{i:06d}", Status.REJECTED, key=keys[i]) for i in range(300, 450)],
        )  # 300 accepted, 150 released, 150 still in flight
        again = journal.begin("kudosity", [*keys, *keys[:10]])  # duplicates count once
        assert list(again.recorded) == keys[:300]
        assert again.recorded["k-299"].message_id == "m-299" and again.recorded["k-0"].to == "+61491000000"
        assert again.in_flight == keys[450:600]
        assert again.fresh == keys[300:450] + keys[600:]
        assert journal.known("kudosity", keys).in_flight == keys[300:]
        assert journal.known("sms-other", keys).in_flight == []  # per provider
    finally:
        journal.inbox.close()


class StoreGoesDown:
    """A shared rate limit whose store gives the first turn, then cannot be reached."""

    def __init__(self) -> None:
        self.turns = 0

    def acquire(self) -> float:
        self.turns += 1
        if self.turns > 1:
            raise TransportError("the shared rate limit store cannot be reached; nothing was sent")
        return 0.0

    def eta(self, calls: int) -> float:
        return 0.0

    def departed(self) -> None:
        pass

    def book(self, calls: int) -> None:
        pass


def test_a_request_whose_turn_cannot_be_taken_is_neither_sent_nor_claimed(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, tmp_path
) -> None:
    url = str(tmp_path / "state.db")
    client = kudosity_v2_factory(journal=url, concurrency=1)
    assert client.provider.transport is not None
    client.provider.transport.limiter = StoreGoesDown()  # the store fails after the first turn
    result = client.send_many(Message("Hi"), [Recipient(n, key=f"down-{i}") for i, n in enumerate(NUMBERS)])

    assert [r.accepted for r in result.results] == [True, False, False]
    assert all(r.retryable and "cannot be reached" in (r.error or "") for r in result.results[1:])
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 1
    journal = SendJournal(open_inbox(url))
    try:
        claim = journal.known("kudosity", [f"down-{i}" for i in range(len(NUMBERS))])
    finally:
        journal.inbox.close()
    assert list(claim.recorded) == ["down-0"] and claim.in_flight == []  # the others were never claimed
