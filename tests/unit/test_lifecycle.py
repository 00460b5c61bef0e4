from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from smsrelay.lifecycle import merge, merge_all, supersedes
from smsrelay.model import Delivery, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def report(status: Status, seconds: float, n: int = 0, mid: str = "m1") -> Delivery:
    return Delivery(
        f"e{n}-{status}-{seconds}", "sandbox", "+61491570156", T0 + timedelta(seconds=seconds), mid, status=status
    )


def test_late_sent_never_overwrites_delivered():
    delivered = report(Status.DELIVERED, 10)
    late_sent = report(Status.SENT, 20)  # arrives later, and even claims a later time
    assert merge(delivered, late_sent).status is Status.DELIVERED
    assert merge(late_sent, delivered).status is Status.DELIVERED


def test_older_event_never_overwrites_newer():
    assert merge(report(Status.SENT, 5), report(Status.QUEUED, 1)).status is Status.SENT
    assert merge(report(Status.FAILED, 5), report(Status.DELIVERED, 1)).status is Status.FAILED


def test_supersedes_for_stores_keeping_status_and_time():
    assert supersedes(Status.DELIVERED, T0, None, None)
    assert not supersedes(Status.SENT, T0 + timedelta(hours=1), Status.DELIVERED, T0)
    assert supersedes(Status.DELIVERED, T0, Status.SENT, T0 + timedelta(hours=1))


reports = st.lists(
    st.builds(
        report,
        st.sampled_from(list(Status)),
        st.integers(min_value=0, max_value=50),
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["m1", "m2"]),
    ),
    max_size=12,
)


@given(reports, st.randoms())
def test_any_order_gives_the_same_final_state(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert merge_all(events) == merge_all(shuffled)


@given(reports)
def test_a_final_status_is_never_replaced_by_a_non_final_one(events):
    merged = merge_all(events)
    for mid, winner in merged.items():
        if any(e.status.final for e in events if e.message_id == mid):
            assert winner.status.final
