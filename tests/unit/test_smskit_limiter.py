"""SMSKit's hourly budget on the client side: a sliding window, and the estimate it gives."""

from __future__ import annotations

import doctest
from datetime import timedelta

import smsrelay.providers.smskit
from smsrelay import Client, ManualClock
from smsrelay.transport import HEADROOM, WindowLimiter

HOUR = 3600 * (1 + HEADROOM)  # the limiter's window: the provider's hour, plus the headroom for arrival jitter


def test_never_more_than_the_limit_in_any_window():
    clock = ManualClock()
    limiter = WindowLimiter(100, 3600, clock=clock)
    stamps = []
    for _ in range(350):
        limiter.acquire()
        stamps.append(clock.now())
    for i, start in enumerate(stamps):
        inside = [t for t in stamps[i:] if t - start < timedelta(hours=1)]
        assert len(inside) <= 100
    # 350 requests: three full windows waited, the last batch starts after 3 (padded) hours.
    assert stamps[-1] - stamps[0] == timedelta(seconds=3 * HOUR)


def test_eta_counts_what_the_window_already_holds():
    clock = ManualClock()
    limiter = WindowLimiter(100, 3600, clock=clock)
    assert limiter.eta(100) == 0 and limiter.eta(101) == HOUR
    for _ in range(60):
        limiter.acquire()
    assert limiter.eta(40) == 0 and limiter.eta(41) == HOUR
    clock.advance(HOUR)
    assert limiter.eta(100) == 0


def test_the_client_estimate_follows_the_limiter():
    client = Client("smskit", api_key="sk_unit", env={}, clock=ManualClock())
    assert client.estimate(100) == timedelta(0)
    assert client.estimate(1_000) == timedelta(seconds=9 * HOUR)
    faster = Client("smskit", api_key="sk_unit", rate_limit=1000 / 3600, env={}, clock=ManualClock())
    assert faster.estimate(1_000) == timedelta(0)


def test_the_adapters_examples_hold():
    # The emulator module has no examples: only the adapter's are run (and there must be some).
    failures, attempted = doctest.testmod(smsrelay.providers.smskit, optionflags=doctest.ELLIPSIS)
    assert failures == 0 and attempted >= 2
