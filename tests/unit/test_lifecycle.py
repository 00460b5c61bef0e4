from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from smsrelay.lifecycle import merge, merge_all, precedence, supersedes
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


def test_a_store_missing_either_half_takes_any_status():
    assert supersedes(Status.SCHEDULED, T0, None, T0)
    assert supersedes(Status.SCHEDULED, T0, Status.DELIVERED, None)


# At the same time, final beats non-final, then the status further along wins.
TIE_ORDER = [
    Status.SCHEDULED,
    Status.QUEUED,
    Status.SENT,
    Status.UNKNOWN,
    Status.CANCELLED,
    Status.EXPIRED,
    Status.REJECTED,
    Status.FAILED,
    Status.DELIVERED,
]


def test_equal_times_break_ties_in_one_full_order():
    assert set(TIE_ORDER) == set(Status)
    for i, low in enumerate(TIE_ORDER):
        for high in TIE_ORDER[i + 1 :]:
            assert supersedes(high, T0, low, T0), (high, low)
            assert not supersedes(low, T0, high, T0), (low, high)
            assert merge(report(low, 0), report(high, 0)).status is high
            assert merge(report(high, 0), report(low, 0)).status is high


def test_an_equal_report_never_supersedes():
    for status in Status:
        assert not supersedes(status, T0, status, T0)
        stored = report(status, 0)
        again = Delivery(stored.event_id, "sandbox", "+61491570157", stored.occurred_at, "m1", status=status)
        assert merge(stored, again) is stored


def test_same_status_and_time_the_larger_event_id_wins_in_any_order():
    a = Delivery("evt-a", "sandbox", "+61491570156", T0, "m1", status=Status.SENT)
    b = Delivery("evt-b", "sandbox", "+61491570156", T0, "m1", status=Status.SENT)
    assert merge(a, b) is b and merge(b, a) is b
    # Without a tiebreak a key sorts before the same key with any tiebreak.
    assert all(precedence(Status.SENT, T0) < precedence(Status.SENT, T0, tb) for tb in ("0", "A", "evt-a"))


def test_reports_without_a_message_id_are_kept_per_event():
    first = Delivery("e1", "sandbox", "+61491570156", T0, None, status=Status.SENT)
    second = Delivery("e2", "sandbox", "+61491570156", T0, None, status=Status.DELIVERED)
    assert merge_all([first, second]) == {"e1": first, "e2": second}
    assert merge_all([first, report(Status.QUEUED, 0)]) == {"e1": first, "m1": report(Status.QUEUED, 0)}


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
    assert set(merged) == {e.message_id for e in events}
    for mid, winner in merged.items():
        assert winner.status.final == any(e.status.final for e in events if e.message_id == mid)
