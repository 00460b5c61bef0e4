"""Bulk send on Kudosity V2 and V1: ``Client.send_many`` against the naive loop and capacity.

V2 takes one recipient per request, so its floor is one request per message and the
gains come from keep-alive connections and concurrency. V1 takes one body to up to
500 numbers, so its floor is ⌈N/500⌉ requests when the body is shared; with a
personalised body per recipient V1 cannot share a request, and smsrelay sends one
per distinct body (reported, with the ⌈N/500⌉ goal, so the gap is visible).

Each emulator runs as its own process (``smsrelay emulate``) on the real clock with no
injected delays, so it does not share the client's interpreter. smsrelay's rate
limiter is lifted (``rate_limit=1e9``): at Kudosity's documented 15 calls a second,
20,000 V2 messages take 22 minutes whatever the client does. Everything else is as
shipped.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from urllib.parse import urlencode

from bench.load import Call, capacity, naive
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.providers.kudosity import KudosityProvider

BENCH = "send_kudosity"
FULL, SMOKE = 20_000, 50
NAIVE_SAMPLE = 2_000  # the naive loop is sequential, so a sample scales linearly
KEY, SECRET, SENDER = "test-key", "test-secret", "61481074185"
TEMPLATE = "Hi {{ name }}, your order {{ order }} has shipped. Reply STOP to opt out."
SHARED = "Your order has shipped. Reply STOP to opt out."
LIFTED = "rate limit lifted to 1e9/s (Kudosity's default is 15/s), emulator process on a real clock, no delays"


def _start(name: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "smsrelay", "emulate", name, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the {name} emulator did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].split()[0]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()


def _number(i: int) -> str:
    return f"+6141{i:07d}"  # AU mobiles +61410000000…


def _recipients(n: int, run: str) -> list[Recipient]:
    return [Recipient(_number(i), vars={"name": f"Customer {run}{i}", "order": f"#{100000 + i}"}) for i in range(n)]


def _body(r: Recipient) -> str:
    return TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ order }}", r.vars["order"])


def _v2_calls(url: str, n: int, run: str) -> list[Call]:
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
    """The naive script: one send-sms per recipient."""
    return [
        Call(
            "POST",
            url + "/send-sms.json",
            urlencode({"message": SHARED if shared else _body(r), "to": r.to.lstrip("+"), "from": SENDER}).encode(),
            _v1_headers(),
        )
        for r in _recipients(n, "naive")
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


def _timed_send(client: Client, message: Message, recipients: list[Recipient]) -> tuple[float, int]:
    provider = client.provider
    assert isinstance(provider, KudosityProvider)
    before = provider.requests_made
    started = time.perf_counter()
    result = client.send_many(message, recipients)
    seconds = time.perf_counter() - started
    if not result.all_accepted:
        raise RuntimeError(f"{len(result.failed)} of {len(recipients)} sends failed, e.g. {result.failed[0].error}")
    return seconds, provider.requests_made - before


def _v2(n: int) -> list[Figure]:
    proc, url = _start("kudosity-v2")
    try:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_v2_calls(url, sample, "naive")) * (n / sample)
        raw_rate = capacity(_v2_calls(url, n, "capacity"), concurrency=8)
        # A send journal, as a campaign runner keeps one: the caller's key (ref) is then checked
        # there, not by one lookup GET per message before sending (docs/client.md, "Exactly once").
        with (
            tempfile.TemporaryDirectory() as state,
            Client(
                "kudosity",
                api="v2",
                api_key=KEY,
                sender=SENDER,
                base_url=url,
                rate_limit=1e9,
                env={},
                journal=f"{state}/journal.db",
            ) as client,
        ):
            ours, made = _timed_send(client, Message(TEMPLATE, ref="bench-v2"), _recipients(n, "smsrelay"))
    finally:
        _stop(proc)
    ratio, rate = naive_seconds / ours, n / ours
    share = rate / raw_rate
    how = f"V2, {n:,} personalised messages; {LIFTED}"
    scaled = f"naive loop timed on {sample:,} and scaled" if n > sample else "naive loop"
    return [
        Figure(BENCH, "V2 send_many vs naive loop (wall time)", ratio, "×", goal="≥ 3× (no batching)", met=ratio >= 3,
               detail=f"{how}; {scaled}: {naive_seconds:.1f}s, send_many: {ours:.1f}s; at 100% of the "
                      f"emulator's raw capacity the ratio would be {naive_seconds * raw_rate / n:.1f}×"),
        Figure(BENCH, "V2 requests for the batch", made, "requests", goal=f"= {n:,} (floor: 1 per message)",
               met=made == n, detail=how),
        Figure(BENCH, "V2 throughput vs emulator capacity", 100 * share, "%", goal="≥ 70%", met=share >= 0.7,
               detail=f"{how}; send_many {rate:,.0f} msg/s, raw load generator {raw_rate:,.0f} req/s (8 connections)"),
    ]  # fmt: skip


def _v1(n: int) -> list[Figure]:
    proc, url = _start("kudosity-v1")
    floor = -(-n // 500)
    try:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_v1_single_calls(url, sample, shared=True)) * (n / sample)
        bulk = _v1_bulk_calls(url, n)
        started = time.perf_counter()
        capacity(bulk, concurrency=min(8, len(bulk)))
        raw_rate = n / (time.perf_counter() - started)  # messages a second in 500-number calls
        with Client(
            "kudosity", rate_limit=1e9, env={}, api="v1", api_key=KEY, api_secret=SECRET, sender=SENDER, base_url=url
        ) as client:
            recipients = [Recipient(_number(i)) for i in range(n)]
            ours, made = _timed_send(client, Message(SHARED, ref="bench-v1"), recipients)
            personal_seconds, personal_made = _timed_send(
                client, Message(TEMPLATE, ref="bench-v1-p"), _recipients(n, "personal")
            )
    finally:
        _stop(proc)
    ratio, rate = naive_seconds / ours, n / ours
    share = rate / raw_rate
    how = f"V1, {n:,} recipients, one shared body; {LIFTED}"
    scaled = f"naive loop (one send-sms per number) timed on {sample:,} and scaled" if n > sample else "naive loop"
    personal = (
        f"V1, {n:,} personalised bodies: send-sms carries one body, so each distinct body is its own "
        f"request ({personal_seconds:.1f}s); ⌈N/500⌉ needs a shared body"
    )
    return [
        Figure(BENCH, "V1 send_many vs naive loop (wall time)", ratio, "×", goal="≥ 10× (batches of 500)",
               met=ratio >= 10, detail=f"{how}; {scaled}: {naive_seconds:.1f}s, send_many: {ours:.1f}s"),
        Figure(BENCH, "V1 requests for the batch (shared body)", made, "requests", goal=f"= {floor:,} (⌈N/500⌉)",
               met=made == floor, detail=how),
        Figure(BENCH, "V1 throughput vs emulator capacity", 100 * share, "%", goal="≥ 70%", met=share >= 0.7,
               detail=f"{how}; send_many {rate:,.0f} msg/s, raw load generator {raw_rate:,.0f} msg/s in 500s"),
        Figure(BENCH, "V1 requests for the batch (personalised)", personal_made, "requests",
               goal=f"= {floor:,} (⌈N/500⌉)", met=personal_made == floor, detail=personal),
    ]  # fmt: skip


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    return _v2(n) + _v1(n)
