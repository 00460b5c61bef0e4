"""The two baselines the physical-limit benches hold smsrelay against, on the bench's clock.

``script`` is what a capable user writes instead of a library: one ``requests.Session``,
``ThreadPoolExecutor(8)``, one request per recipient, and on a 429 a wait of
``Retry-After`` when the provider sends one, else a short doubling backoff, then the same
request again. ``naive`` is the curl-in-a-loop step: one request after another, a new
connection each time, and on a 429 the same wait (as ``curl --retry`` does).

Both wait on ``clock`` so that a scaled clock shrinks their waits exactly as it shrinks
smsrelay's. Neither checks numbers or bodies: the calls come pre-built.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from bench.load import Call
from smsrelay.clock import Clock

WORKERS = 8
BACKOFF, MAX_BACKOFF = 0.5, 8.0  # seconds of the bench's clock
MAX_TRIES = 50


@dataclass
class Tally:
    """What a baseline sent: requests made (429s included) and the 429s it got."""

    requests: int = 0
    throttled: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def count(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.throttled += status == 429


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _send(session: requests.Session | None, call: Call, clock: Clock, tally: Tally) -> None:
    wait = BACKOFF
    for _ in range(MAX_TRIES):
        if session is None:
            resp = requests.request(
                call.method, call.url, data=call.body, headers={**call.headers, "Connection": "close"}, timeout=60
            )
        else:
            resp = session.request(call.method, call.url, data=call.body, headers=call.headers, timeout=60)
        tally.count(resp.status_code)
        if resp.status_code != 429:
            resp.raise_for_status()
            return
        after = _retry_after(resp)
        clock.sleep(after if after is not None else wait)
        wait = min(wait * 2, MAX_BACKOFF)
    raise RuntimeError(f"still throttled after {MAX_TRIES} tries")


def script(calls: Sequence[Call], clock: Clock, *, workers: int = WORKERS) -> Tally:
    """The capable user's script: a session, a pool of ``workers`` threads, retry on 429."""
    tally = Tally()
    with requests.Session() as session, ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in [pool.submit(_send, session, c, clock, tally) for c in calls]:
            fut.result()
    return tally


def naive(calls: Sequence[Call], clock: Clock) -> Tally:
    """One request after another on a new connection each, waiting out a 429 as curl --retry does."""
    tally = Tally()
    for c in calls:
        _send(None, c, clock, tally)
    return tally
