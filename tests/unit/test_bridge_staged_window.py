"""The staged pull window folds events exactly as the in-memory window does, whatever the pages
and chunks: the same report per message (merge rule), the earliest opt-out per phone, each reply
and link hit once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from smsrelay_salesforce.pull import Window, stage
from smsrelay_salesforce.state import State

from smsrelay import Delivery, LinkHit, OptOut, Reply, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PHONES = ["+61491570001", "+61491570002", "+61491570003"]


def _pool() -> list[Any]:
    """Events to draw from: a duplicate drawn twice is the same event, as a re-read feed gives it."""
    events: list[Any] = []
    for m in range(3):
        for status in (Status.QUEUED, Status.SENT, Status.DELIVERED, Status.FAILED):
            for t in (0, 1, 1.000001):  # equal and microsecond-apart times
                at = T0 + timedelta(seconds=t)
                eid = f"d-{m}-{status.value}-{t}"
                events.append(Delivery(eid, "sandbox", PHONES[m], at, f"m{m}", {"x": 1}, status=status,
                                       raw_status=status.value.upper()))  # fmt: skip
        events.append(Delivery(f"r-{m}", "sandbox", PHONES[m], T0, None, status=Status.SENT, message_ref=f"k{m}"))
    for i, text in enumerate(["STOP", "yes", " stop ", "Unsubscribe"]):
        for p in PHONES[:2]:
            events.append(Reply(f"mo-{i}-{p}", "sandbox", p, T0 + timedelta(seconds=i % 2), f"in-{i}", {"y": 2},
                                text=text, in_reply_to="m0"))  # fmt: skip
    for i, p in enumerate(PHONES):
        events.append(OptOut(f"o-{i}", "sandbox", p, T0 + timedelta(seconds=1), None, source="link"))
        events.append(LinkHit(f"h-{i}", "sandbox", p, T0, f"m{i}", url="https://x.example/a"))
    return events


POOL = _pool()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(POOL), max_size=60),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=1, max_value=5),
)
def test_staged_fold_equals_the_in_memory_fold(events: list[Any], page: int, chunk: int) -> None:
    expected = Window()
    for e in events:
        expected.add(e)
    state = State(":memory:")
    try:
        read = sum(stage(state, events[i : i + page]) for i in range(0, len(events), page))
        assert read == len(events)
        assert state.staged_count() == expected.size()
        rows = [row for part in state.staged_chunks(chunk) for row in part]
        assert all(len(part) <= chunk for part in state.staged_chunks(chunk))
        got = Window.of_staged(rows)
        assert got.deliveries == expected.deliveries
        assert got.replies == expected.replies
        assert got.hits == expected.hits
        assert got.opt_outs == expected.opt_outs
        state.clear_staged()
        assert state.staged_count() == 0
    finally:
        state.close()


def test_a_late_sent_staged_after_delivered_does_not_replace_it() -> None:
    state = State(":memory:")
    try:
        delivered = Delivery("d2", "sandbox", PHONES[0], T0 + timedelta(seconds=5), "m0", status=Status.DELIVERED)
        late = Delivery("d1", "sandbox", PHONES[0], T0 + timedelta(seconds=2), "m0", status=Status.SENT)
        stage(state, [delivered])
        stage(state, [late])  # a later page
        (report,) = Window.of_staged(row for part in state.staged_chunks(10) for row in part).deliveries.values()
        assert report.status is Status.DELIVERED and report.event_id == "d2"
    finally:
        state.close()
