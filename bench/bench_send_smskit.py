"""Bulk send on SMSKit, against its documented limit and on loopback.

SMSKit takes one recipient per request, so the floor is one request per message, and
every message here is personalised (its own name and code).

**Against the limit** (``bench/limits.py``): 100 requests an hour per key (429 with
``Retry-After``), 150 ms ± 30 ms latency, the emulator in its own process on a clock
running ``SPEED``× real time and shared with the client, which runs as shipped (its
default limiter: 100 in any hour). 5,000 messages are 50 hours of simulated time.

**On loopback** (information, no goal): the emulator with no latency and its limit off,
smsrelay's limiter lifted (``rate_limit``), against the naive loop and the raw load generator.
"""

from __future__ import annotations

import json
from typing import Any

from bench.limits import Path, measure, personalised
from bench.load import Call, capacity, naive
from bench.loopback import loopback_emulator, timed_send
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.clock import ScaledClock

BENCH = "send_smskit"
KEY = "sk_test_key"
LIMITED, SMOKE = 2_000, 40
LOOPBACK = 3_000
NAIVE_SAMPLE = 500  # the naive loop is sequential, so a sample scales linearly
TEMPLATE = "Hi {{ name }}, your code is {{ code }}. Reply STOP to opt out."
# An hour in 2 s: each window's 100 requests take a fraction of it on two cores, and the
# limiter's 2% headroom (72 simulated s) is 40 ms of real scheduling delay. At 3,600x it was
# 20 ms, and a busy moment on two cores drew a 429 in some runs.
SPEED = 1_800.0
MARGIN = (
    "smsrelay's WindowLimiter counts a turn from when its request leaves its connection "
    "(smsrelay.departure) and SMSKit's hour as 2% longer (transport.HEADROOM): request 101 may "
    "arrive up to 72 simulated s (40 ms real at SPEED) later than request 1 did. A 429 here means "
    "one request took longer than that between leaving the client and being stamped by the emulator "
    "(threads waiting for the GIL on two cores), and its Retry-After then holds that worker up to a "
    "window. What would close it: a slower clock, where the same real delay is fewer simulated seconds"
)
UNSENT = (
    "a 429 whose Retry-After is longer than the transport's longest wait (120 s) comes back failed "
    "with retry_after, as documented, for the caller to send later; without the 429s above there "
    "would be none"
)


def _recipients(n: int, run: str) -> list[Recipient]:
    return personalised(n, run, lambda i: f"+25471{i:07d}")


def _calls(url: str, n: int, run: str = "script") -> list[Call]:
    """What a script sends: the same personalised bodies, pre-rendered."""
    headers = {"X-Api-Key": KEY, "Content-Type": "application/json"}
    out = []
    for r in _recipients(n, run):
        message = TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        body = {"recipient": r.to, "message": message, "idempotencyKey": f"{run}-{r.to}"}
        out.append(Call("POST", url + "/api/sms/send", json.dumps(body).encode(), headers))
    return out


def _client(clock: ScaledClock | None, url: str, **kw: Any) -> Client:
    return Client("smskit", api_key=KEY, base_url=url, env={}, clock=clock, **kw)


def _loopback(n: int) -> list[Figure]:
    with loopback_emulator("smskit") as url:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_calls(url, sample, "naive")) * (n / sample)
        raw_rate = capacity(_calls(url, n, "capacity"), concurrency=8)
        ours = timed_send(_client(None, url, rate_limit=1e9), Message(TEMPLATE), _recipients(n, "smsrelay"))
    how = f"{n:,} personalised messages, loopback, no delays, limits lifted on both sides"
    naive_how = f"naive loop timed on {sample:,} and scaled" if n > sample else "naive loop"
    return [
        Figure(BENCH, "loopback: send_many vs naive loop (wall)", naive_seconds / ours, "×",
               detail=f"{how}; {naive_how}: {naive_seconds:.1f}s, send_many: {ours:.1f}s"),
        Figure(BENCH, "loopback: throughput vs emulator capacity", 100 * n / ours / raw_rate, "%",
               detail=f"{how}; send_many {n / ours:,.0f} msg/s, load generator {raw_rate:,.0f} req/s (8 connections)"),
    ]  # fmt: skip


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else LIMITED
    path = Path(BENCH, "personalised", "smskit", SPEED, _client, Message(TEMPLATE), _recipients(n, "smsrelay"),
                _calls, n, 8, {"429": MARGIN, "unsent": UNSENT})  # fmt: skip
    return measure(path, smoke=smoke) + _loopback(SMOKE if smoke else LOOPBACK)
