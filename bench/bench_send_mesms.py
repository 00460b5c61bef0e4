"""Bulk send on ME-SMS, against the physical limit and on loopback.

One ME-SMS request carries one ``content`` and up to 2,000,000 ``msisdns``; its
``variables`` are one object per request, so they cannot personalise per recipient.
smsrelay therefore groups recipients by rendered body. Two campaigns:

* **personalised** (each body has the recipient's name and code): the floor under that
  rule is one request per distinct body, N requests.
* **shared body** (the same text to everyone): ⌈N / 2,000,000⌉ = 1 request.

**Against the physical limit** (``bench/limits.py``): ME-SMS documents no rate limit, so
the bound is the client's 8 requests in flight at 150 ms ± 30 ms each. Each request's few
milliseconds of real loopback time count ``SPEED`` times over in simulated time, so the
clock runs only a few times faster than real time.

**On loopback** (information, no goal): no latency, against the naive loop and capacity.
"""

from __future__ import annotations

import json
from typing import Any

from bench.limits import Path, measure, personalised
from bench.load import Call, capacity, naive
from bench.loopback import loopback_emulator, loopback_figures, timed_send
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.clock import ScaledClock

BENCH = "send_mesms"
KEY = "test-key"
SEND = "/api/v2/sms/send"
FULL, SMOKE = 20_000, 40
# Held by 8 requests in flight at 150 ms, 2,000 personalised messages are 37.5 simulated
# seconds: 19 s of real time at SPEED.
LIMITED = 2_000
LOOPBACK = 3_000
NAIVE_SAMPLE = 500  # the naive loop is sequential, so a sample scales linearly
SPEED = 2.0
TEMPLATE = "Hi {{ name }}, your code is {{ code }}."
SHARED = "Flash sale today: 20% off everything until midnight."
PER_REQUEST = (
    "smsrelay does more per request than the script (checking the number, rendering, turning each "
    "answer into a result) on the same two cores as the emulator, and each request's real time counts "
    "the clock's speed times over; less client CPU per request (most of it is the requests stack) would close it"
)
LOOPBACK_COST = (
    "each request's real loopback time (a few ms of client, emulator and scheduling) counts SPEED "
    "times over against 150 ms of simulated latency; on a real network it is within the latency. "
    "A higher default concurrency would also raise the bound itself"
)
ONE_REQUEST = (
    "the floor is one request of 20,000 numbers, so the minimum is one latency; what remains is "
    "preparing 20,000 messages (about 26 µs each of client CPU, validating the number about 7 µs of "
    "it) before that one request can go. Nothing on the wire is left to save"
)


def _number(i: int) -> str:
    return f"+6681{i:07d}"


def _recipients(n: int, run: str) -> list[Recipient]:
    return personalised(n, run, _number)


def _calls(url: str, n: int, run: str, shared: bool) -> list[Call]:
    """What a script sends: one request per recipient, bodies pre-rendered."""
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    out = []
    for r in _recipients(n, run):
        text = (
            SHARED if shared else TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        )
        body: dict[str, Any] = {"sender": "Acme", "content": text, "msisdns": [r.to.lstrip("+")]}
        out.append(Call("POST", url + SEND, json.dumps(body).encode(), headers))
    return out


def _client(clock: ScaledClock | None, url: str) -> Client:
    return Client("mesms", api_key=KEY, base_url=url, sender="Acme", env={}, clock=clock)


def _loopback(n: int) -> list[Figure]:
    sample = min(n, NAIVE_SAMPLE)
    with loopback_emulator("mesms") as url:
        naive_personal = naive(_calls(url, sample, "naive", shared=False)) * (n / sample)
        raw_rate = capacity(_calls(url, n, "capacity", shared=False), concurrency=8)
        ours = timed_send(_client(None, url), Message(TEMPLATE), _recipients(n, "smsrelay"))
        out = loopback_figures(BENCH, "personalised", n, naive_personal, ours, raw_rate)
        naive_shared = naive(_calls(url, sample, "naive-shared", shared=True)) * (n / sample)
        ours = timed_send(_client(None, url), Message(SHARED), [Recipient(_number(i)) for i in range(n)])
        out += loopback_figures(BENCH, "shared body", n, naive_shared, ours, None)
    return out


def run(smoke: bool) -> list[Figure]:
    n, limited = (SMOKE, SMOKE) if smoke else (FULL, LIMITED)
    paths = [
        Path(BENCH, "personalised", "mesms", SPEED, _client, Message(TEMPLATE), _recipients(limited, "p"),
             lambda url, k: _calls(url, k, "script", shared=False), limited, 8,
             {"ratio": LOOPBACK_COST, "script": PER_REQUEST}),
        Path(BENCH, "shared body", "mesms", 1.0, _client, Message(SHARED), [Recipient(_number(i)) for i in range(n)],
             lambda url, k: _calls(url, k, "script", shared=True), -(-n // 2_000_000), 8, {"ratio": ONE_REQUEST}),
    ]  # fmt: skip
    out: list[Figure] = []
    for path in paths:
        out += measure(path, smoke=smoke)
    return out + _loopback(SMOKE if smoke else LOOPBACK)
