"""Bulk send on SMSKit: ``Client.send_many`` against the naive loop and the emulator's capacity.

SMSKit takes one recipient per request, so the floor is one request per message and
the only ways to go faster are keep-alive connections and concurrency. Every message
is personalised (its own name and code), so nothing can be shared between requests.

The emulator runs as its own process (``smsrelay emulate smskit``) on the real clock,
with no injected delays and with its rate limit switched off: the real API allows
100 requests an hour, at which 20,000 messages would take 200 hours. smsrelay's own
limiter is lifted the same way (``rate_limit``), and everything else is as shipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import suppress

import requests

from bench.load import Call, capacity, naive
from bench.report import Figure
from smsrelay import Client, Message, Recipient

BENCH = "send_smskit"
KEY = "sk_test_key"
FULL, SMOKE = 20_000, 50
NAIVE_SAMPLE = 2_000  # the naive loop is sequential, so a sample scales linearly
TEMPLATE = "Hi {{ name }}, your code is {{ code }}. Reply STOP to opt out."


def _start_emulator() -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "smsrelay", "emulate", "smskit", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"the SMSKit emulator did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    # The documented 100 requests/hour would make this a 200-hour benchmark.
    requests.post(url + "/_emulator/rate_limit", json={"limit": None}, timeout=10).raise_for_status()
    return proc, url


def _sends(url: str) -> int:
    state = requests.get(url + "/_emulator/state", timeout=60).json()
    return int(state["sends"])


def _recipients(n: int, run: str) -> list[Recipient]:
    return [
        Recipient(f"+25471{i:07d}", vars={"name": f"Customer {run}{i}", "code": f"{(i * 7919) % 1_000_000:06d}"})
        for i in range(n)
    ]


def _calls(url: str, n: int, run: str) -> list[Call]:
    """What a script would send: the same personalised bodies, pre-rendered."""
    headers = {"X-Api-Key": KEY, "Content-Type": "application/json"}
    out = []
    for r in _recipients(n, run):
        message = TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        body = {"recipient": r.to, "message": message, "idempotencyKey": f"{run}-{r.to}"}
        out.append(Call("POST", url + "/api/sms/send", json.dumps(body).encode(), headers))
    return out


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    proc, url = _start_emulator()
    try:
        sample = min(n, NAIVE_SAMPLE)
        naive_seconds = naive(_calls(url, sample, "naive")) * (n / sample)
        raw_rate = capacity(_calls(url, n, "capacity"), concurrency=8)

        before = _sends(url)
        with Client("smskit", api_key=KEY, base_url=url, rate_limit=1e9, env={}) as client:
            started = time.perf_counter()
            result = client.send_many(Message(TEMPLATE, ref="bench-smsrelay"), _recipients(n, "smsrelay"))
            ours = time.perf_counter() - started
        sent_requests = _sends(url) - before
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
    if not result.all_accepted:
        raise RuntimeError(f"{len(result.failed)} of {n} sends failed, e.g. {result.failed[0].error}")

    ratio = naive_seconds / ours
    rate = n / ours
    share = rate / raw_rate
    how = (
        f"{n:,} personalised messages, emulator process on a real clock, no delays, its 100/hour rate limit "
        "disabled (the real API allows 100 requests/hour)"
    )
    naive_how = f"naive loop timed on {min(n, NAIVE_SAMPLE):,} and scaled" if n > NAIVE_SAMPLE else "naive loop"
    return [
        Figure(
            BENCH,
            "send_many vs naive loop (wall time)",
            ratio,
            "×",
            goal="≥ 3×",
            met=ratio >= 3,
            detail=f"{how}; {naive_how}: {naive_seconds:.1f}s, send_many: {ours:.1f}s",
        ),
        Figure(
            BENCH,
            "requests for the batch",
            sent_requests,
            "requests",
            goal=f"= {n:,} (floor: 1 per recipient)",
            met=sent_requests == n,
            detail=how,
        ),
        Figure(
            BENCH,
            "throughput vs emulator capacity",
            100 * share,
            "%",
            goal="≥ 70%",
            met=share >= 0.7,
            detail=f"{how}; send_many {rate:,.0f} msg/s, raw load generator {raw_rate:,.0f} req/s (8 connections)",
        ),
        Figure(BENCH, "send_many throughput", rate, "msg/s", detail=how),
    ]
