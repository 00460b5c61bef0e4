"""Bulk send on Kudosity V2 and V1, against the documented limit and on loopback.

**Against the limit** (``bench/limits.py``): 15 calls a second per account, 150 ms ± 30 ms
latency, the emulator in its own process on a scaled clock shared with the client, and the
client as shipped (its default limiter: 15/s). V2 takes one recipient per request, so its
floor is one request per message. V1 takes one body to up to 500 numbers: a shared body's
floor is ⌈N/500⌉; personalised bodies cannot share a request, so their floor is N.

**On loopback** (information, no goal): the emulator with no latency and no limit, smsrelay's
limiter lifted (``rate_limit=1e9``), against the naive loop and the raw load generator.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

from bench.limits import Path, measure
from bench.load import Call, capacity, naive
from bench.loopback import loopback_emulator, timed_send
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.clock import ScaledClock

BENCH = "send_kudosity"
FULL, SMOKE = 20_000, 40
# Held at 15 calls/s, 1,000 messages are 67 simulated seconds: 33 s of real time at SPEED.
LIMITED = 1_000
LOOPBACK, LOOPBACK_SMOKE = 3_000, 40
NAIVE_SAMPLE = 500  # the naive loop is sequential, so a sample scales linearly
KEY, SECRET, SENDER = "test-key", "test-secret", "61481074185"
TEMPLATE = "Hi {{ name }}, your order {{ order }} has shipped. Reply STOP to opt out."
SHARED = "Your order has shipped. Reply STOP to opt out."
LIFTED = "loopback, rate limit lifted to 1e9/s, emulator process on a real clock, no delays"
# Against a one-second window a faster clock would turn the client's few milliseconds of thread
# scheduling into tens of simulated milliseconds, and so into 429s no real network would cause.
SPEED = 2.0
LIMITER = (
    "the client counts a turn from when its request leaves its connection (smsrelay.departure), "
    "and its window is 2% longer than Kudosity's second (transport.HEADROOM), which absorbs a "
    "request stamped up to 20 simulated ms after it left, 20/SPEED ms of real delay here; a 429 "
    "means one request took longer than that (threads of the client and the emulator waiting for "
    "the GIL on two cores). What would close it: a slower clock; a real network's jitter is what "
    "the 2% is sized for"
)

BULK = (
    "40 requests of 500 numbers on real time, 4 in flight: the minimum lets a window's 15 requests go "
    "at once, but 4 in flight send the last window's 10 in 3 rounds of 150 ms, so the wire allows no "
    "less than 2.45 s; the rest is the emulator parsing and storing 500 numbers per request (about "
    "10 ms of real CPU each). More in flight at a window's start would close part of it (8: 2.46 s in "
    "one probe), if arrivals that bunch up still draw no 429"
)


def _number(i: int) -> str:
    return f"+6141{i:07d}"  # AU mobiles +61410000000…


def _recipients(n: int, run: str) -> list[Recipient]:
    return [Recipient(_number(i), vars={"name": f"Customer {run}{i}", "order": f"#{100000 + i}"}) for i in range(n)]


def _body(r: Recipient) -> str:
    return TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ order }}", r.vars["order"])


def _v2_calls(url: str, n: int, run: str = "script") -> list[Call]:
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    return [
        Call(
            "POST",
            url + "/v2/sms",
            json.dumps(
                {"message": _body(r), "sender": SENDER, "recipient": r.to.lstrip("+"), "message_ref": f"{run}-{i}"}
            ).encode(),
            headers,
        )
        for i, r in enumerate(_recipients(n, run))
    ]


def _v1_headers() -> dict[str, str]:
    token = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/x-www-form-urlencoded"}


def _v1_single_calls(url: str, n: int, shared: bool) -> list[Call]:
    """A script's requests: one send-sms per recipient."""
    return [
        Call(
            "POST",
            url + "/send-sms.json",
            urlencode({"message": SHARED if shared else _body(r), "to": r.to.lstrip("+"), "from": SENDER}).encode(),
            _v1_headers(),
        )
        for r in _recipients(n, "script")
    ]


def _v1_bulk_calls(url: str, n: int) -> list[Call]:
    numbers = [_number(i).lstrip("+") for i in range(n)]
    chunks = [numbers[i : i + 500] for i in range(0, n, 500)]
    return [
        Call(
            "POST",
            url + "/send-sms.json",
            urlencode({"message": SHARED, "to": ",".join(c), "from": SENDER}).encode(),
            _v1_headers(),
        )
        for c in chunks
    ]


def _v2_client(clock: ScaledClock | None, url: str, **kw: Any) -> Client:
    return Client("kudosity", api="v2", api_key=KEY, sender=SENDER, base_url=url, env={}, clock=clock, **kw)


def _v1_client(clock: ScaledClock | None, url: str, **kw: Any) -> Client:
    opts: dict[str, Any] = {"api": "v1", "api_key": KEY, "api_secret": SECRET, "sender": SENDER, "base_url": url}
    return Client("kudosity", env={}, clock=clock, **opts, **kw)


def _limit_paths(n: int, limited: int) -> list[Path]:
    closes = {"429": LIMITER}
    return [
        Path(BENCH, "V2, personalised", "kudosity-v2", SPEED, _v2_client, Message(TEMPLATE),
             _recipients(limited, "v2"), _v2_calls, limited, 8, closes),
        Path(BENCH, "V1, shared body", "kudosity-v1", 1.0, _v1_client, Message(SHARED),
             [Recipient(_number(i)) for i in range(n)], lambda url, k: _v1_single_calls(url, k, True),
             -(-n // 500), 4, {**closes, "ratio": BULK}),
        Path(BENCH, "V1, personalised", "kudosity-v1", SPEED, _v1_client, Message(TEMPLATE),
             _recipients(limited, "v1"), lambda url, k: _v1_single_calls(url, k, False), limited, 4,
             closes),
    ]  # fmt: skip


def _v2_loopback(n: int) -> list[Figure]:
    with loopback_emulator("kudosity-v2") as url:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_v2_calls(url, sample, "naive")) * (n / sample)
        raw_rate = capacity(_v2_calls(url, n, "capacity"), concurrency=8)
        ours = timed_send(_v2_client(None, url, rate_limit=1e9), Message(TEMPLATE), _recipients(n, "smsrelay"))
    how = f"V2, {n:,} personalised messages; {LIFTED}"
    scaled = f"naive loop timed on {sample:,} and scaled" if n > sample else "naive loop"
    return [
        Figure(BENCH, "loopback: V2 send_many vs naive loop (wall)", naive_seconds / ours, "×",
               detail=f"{how}; {scaled}: {naive_seconds:.1f}s, send_many: {ours:.1f}s"),
        Figure(BENCH, "loopback: V2 throughput vs emulator capacity", 100 * n / ours / raw_rate, "%",
               detail=f"{how}; send_many {n / ours:,.0f} msg/s, load generator {raw_rate:,.0f} req/s (8 connections)"),
    ]  # fmt: skip


def _v1_loopback(n: int) -> list[Figure]:
    with loopback_emulator("kudosity-v1") as url:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_v1_single_calls(url, sample, shared=True)) * (n / sample)
        bulk = _v1_bulk_calls(url, n)
        started = time.perf_counter()
        capacity(bulk, concurrency=min(4, len(bulk)))
        raw_rate = n / (time.perf_counter() - started)  # messages a second in 500-number calls
        recipients = [Recipient(_number(i)) for i in range(n)]
        ours = timed_send(_v1_client(None, url, rate_limit=1e9), Message(SHARED), recipients)
    how = f"V1, {n:,} recipients, one shared body; {LIFTED}"
    scaled = f"naive loop (one send-sms per number) timed on {sample:,} and scaled" if n > sample else "naive loop"
    return [
        Figure(BENCH, "loopback: V1 shared body, send_many vs naive loop (wall)", naive_seconds / ours, "×",
               detail=f"{how}; {scaled}: {naive_seconds:.1f}s, send_many: {ours:.2f}s"),
        Figure(BENCH, "loopback: V1 shared body, throughput vs emulator capacity", 100 * n / ours / raw_rate, "%",
               detail=f"{how}; send_many {n / ours:,.0f} msg/s, load generator {raw_rate:,.0f} msg/s in 500s"),
    ]  # fmt: skip


def run(smoke: bool) -> list[Figure]:
    out: list[Figure] = []
    for path in _limit_paths(SMOKE, SMOKE) if smoke else _limit_paths(FULL, LIMITED):
        out += measure(path, smoke=smoke)
    loopback = LOOPBACK_SMOKE if smoke else LOOPBACK
    return out + _v2_loopback(loopback) + _v1_loopback(loopback)
