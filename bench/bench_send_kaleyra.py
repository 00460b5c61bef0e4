"""Bulk send on Kaleyra, against the physical limit and on loopback.

Kaleyra takes a comma-separated ``to`` with one ``body``, so recipients with the same
rendered body share a request, ``batch_size`` (100) at a time. Two campaigns:

* **personalised** (each body has the recipient's name and code): one request per
  distinct body, so the floor is N requests.
* **shared body**: the floor is ⌈N / 100⌉ requests.

**Against the physical limit** (``bench/limits.py``): Kaleyra allows 50,000 requests in
any 5 minutes, more than 8 requests in flight at 150 ms ± 30 ms can use (53 a second,
16,000 per 5 minutes), so the bound is the client's concurrency. As for ME-SMS, the clock
runs only a few times faster than real time.

**On loopback** (information, no goal): no latency, against the naive loop and capacity.
"""

from __future__ import annotations

from urllib.parse import urlencode

from bench.bench_send_mesms import PER_REQUEST
from bench.limits import Path, measure, personalised
from bench.load import Call, capacity, naive
from bench.loopback import loopback_emulator, loopback_figures, timed_send
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.clock import ScaledClock
from smsrelay.providers.kaleyra import KaleyraProvider

BENCH = "send_kaleyra"
KEY = "test-key"
SID = "HXAP0000000000"
SEND = f"/v1/{SID}/messages"
BATCH = 100
FULL, SMOKE = 20_000, 40
LIMITED = 2_000  # personalised: 9.4 s at 32 in flight
IN_FLIGHT = KaleyraProvider.capabilities.concurrency
LOOPBACK = 3_000
NAIVE_SAMPLE = 500
# Real time: the send is held by latency ÷ concurrency, not by a long window, so a faster
# clock would only charge each request's real loopback CPU (client and emulator) SPEED times.
SPEED = 1.0
TEMPLATE = "Hi {{ name }}, your code is {{ code }}."
SHARED = "Flash sale today: 20% off everything until midnight."
CONCURRENCY = (
    "Kaleyra allows 50,000 requests in 5 minutes and smsrelay keeps 32 in flight, so a send of "
    "2,000 is held by latency ÷ concurrency. Each request's loopback time (client and emulator CPU, "
    "scheduling on two cores) adds to its latency: less CPU per request would close it"
)

BULK = (
    "200 requests of 100 numbers on real time, 32 in flight: the minimum counts 200 × 150 ms ÷ 32, "
    "but 200 requests in 32 slots take 7 rounds of 150 ms (1.05 s); the rest is CPU on the two cores the "
    "client shares with the emulator: about 36 µs per message in the client (validating the number is "
    "about 10 µs of it, overlapped with the sending) and about 15 µs per number in the emulator"
)


def _number(i: int) -> str:
    return f"+9198{i:08d}"


def _recipients(n: int, run: str) -> list[Recipient]:
    return personalised(n, run, _number)


def _calls(url: str, n: int, run: str, shared: bool) -> list[Call]:
    """What a script sends: one form-encoded request per recipient."""
    headers = {"api-key": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    out = []
    for r in _recipients(n, run):
        text = (
            SHARED if shared else TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        )
        form = {"to": r.to, "sender": "KLRHXA", "body": text, "source": "API"}
        out.append(Call("POST", url + SEND, urlencode(form).encode(), headers))
    return out


def _client(clock: ScaledClock | None, url: str) -> Client:
    return Client("kaleyra", api_key=KEY, sid=SID, base_url=url, sender="KLRHXA", env={}, clock=clock)


def _loopback(n: int) -> list[Figure]:
    sample = min(n, NAIVE_SAMPLE)
    with loopback_emulator("kaleyra") as url:
        naive_personal = naive(_calls(url, sample, "naive", shared=False)) * (n / sample)
        # The capacity on as many connections as smsrelay keeps in flight, so the share compares like with like.
        raw_rate = capacity(_calls(url, n, "capacity", shared=False), concurrency=IN_FLIGHT)
        ours = timed_send(_client(None, url), Message(TEMPLATE), _recipients(n, "smsrelay"))
        out = loopback_figures(BENCH, "personalised", n, naive_personal, ours, raw_rate, connections=IN_FLIGHT)
        naive_shared = naive(_calls(url, sample, "naive-shared", shared=True)) * (n / sample)
        ours = timed_send(_client(None, url), Message(SHARED), [Recipient(_number(i)) for i in range(n)])
        out += loopback_figures(BENCH, "shared body", n, naive_shared, ours, None)
    return out


def run(smoke: bool) -> list[Figure]:
    n, limited = (SMOKE, SMOKE) if smoke else (FULL, LIMITED)
    paths = [
        Path(BENCH, "personalised", "kaleyra", SPEED, _client, Message(TEMPLATE), _recipients(limited, "p"),
             lambda url, k: _calls(url, k, "script", shared=False), limited, IN_FLIGHT,
             {"ratio": CONCURRENCY, "script": PER_REQUEST}),
        Path(BENCH, "shared body", "kaleyra", 1.0, _client, Message(SHARED), [Recipient(_number(i)) for i in range(n)],
             lambda url, k: _calls(url, k, "script", shared=True), -(-n // BATCH), IN_FLIGHT, {"ratio": BULK}),
    ]  # fmt: skip
    out: list[Figure] = []
    for path in paths:
        out += measure(path, smoke=smoke)
    return out + _loopback(SMOKE if smoke else LOOPBACK)
