from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from smsrelay.transport import RetryPolicy, Transport, parse_retry_after


def test_retry_after_in_seconds_and_as_a_date():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


@given(st.integers(min_value=1, max_value=30))
def test_backoff_is_full_jitter_capped(attempt):
    policy = RetryPolicy(backoff=0.5, max_backoff=10)
    delay = policy.delay(attempt)
    assert 0 <= delay <= min(10, 0.5 * 2 ** (attempt - 1))
    assert policy.delay(attempt, retry_after=3) == 3


def test_transport_repr_and_errors_hide_credentials():
    t = Transport("https://user:pw-secret@api.example.com", provider="x", headers={"x-api-key": "key-secret-1"})
    assert "pw-secret" not in repr(t) and "key-secret-1" not in repr(t)
