"""Bulk send on ME-SMS: ``Client.send_many`` against the naive loop and the emulator's capacity.

One ME-SMS request carries one ``content`` and up to 2,000,000 ``msisdns``; its
``variables`` are one object per request, so they cannot personalise per recipient.
smsrelay therefore groups recipients by rendered body. Two campaigns of N recipients:

* **personalised** (each body has the recipient's name and code): the floor under that
  rule is one request per distinct body, i.e. N requests; the gain over a loop comes
  from keep-alive connections and concurrency only.
* **shared body** (the same text to everyone): the floor is ⌈N / 2,000,000⌉ = 1 request.

The emulator runs as its own process (``smsrelay emulate mesms``) on the real clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import requests

from bench.load import Call, capacity, naive
from bench.report import Figure
from smsrelay import Client, Message, Recipient

BENCH = "send_mesms"
KEY = "test-key"
SEND = "/api/v2/sms/send"
FULL, SMOKE = 20_000, 50
NAIVE_SAMPLE = 2_000  # the naive loop is sequential, so a sample scales linearly
TEMPLATE = "Hi {{ name }}, your code is {{ code }}."
SHARED = "Flash sale today: 20% off everything until midnight."


@contextmanager
def emulator_process(name: str) -> Iterator[str]:
    """Run ``smsrelay emulate <name>`` on a free port; yield its URL."""
    cmd = [sys.executable, "-m", "smsrelay", "emulate", name, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the {name} emulator did not start: {line!r}")
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def received(url: str, method: str, path: str) -> int:
    """How many ``method path`` requests the emulator process recorded."""
    rows = requests.get(url + "/_emulator/requests", timeout=120).json()
    return sum(1 for r in rows if r["method"] == method and r["path"] == path)


def forget(url: str) -> None:
    requests.delete(url + "/_emulator/requests", timeout=60).raise_for_status()


def figures(
    bench: str,
    how: str,
    n: int,
    naive_seconds: float,
    ours: float,
    sent: int,
    floor: int,
    raw_rate: float | None,
    ratio_goal: float | None,
) -> list[Figure]:
    """The standard figures of one send campaign."""
    ratio = naive_seconds / ours
    rate = n / ours
    out = [
        Figure(
            bench,
            f"{how}: send_many vs naive loop (wall time)",
            ratio,
            "×",
            goal=f"≥ {ratio_goal:g}×" if ratio_goal else None,
            met=ratio >= ratio_goal if ratio_goal else None,
            detail=f"naive {naive_seconds:.1f}s, send_many {ours:.2f}s",
        ),
        Figure(
            bench,
            f"{how}: requests for the batch",
            sent,
            "requests",
            goal=f"= floor {floor:,}",
            met=sent == floor,
            detail=f"{n:,} recipients",
        ),
    ]
    if raw_rate is not None:
        share = rate / raw_rate
        out.append(
            Figure(
                bench,
                f"{how}: throughput vs emulator capacity",
                100 * share,
                "%",
                goal="≥ 70%",
                met=share >= 0.7,
                detail=f"send_many {rate:,.0f} msg/s, raw load generator {raw_rate:,.0f} req/s (8 connections)",
            )
        )
    out.append(Figure(bench, f"{how}: send_many throughput", rate, "msg/s"))
    return out


def _number(i: int) -> str:
    return f"+6681{i:07d}"


def _recipients(n: int, run: str) -> list[Recipient]:
    return [
        Recipient(_number(i), vars={"name": f"Customer {run}{i}", "code": f"{i * 7919 % 10**6:06d}"}) for i in range(n)
    ]


def _calls(url: str, n: int, run: str, shared: bool) -> list[Call]:
    """What a script would send: one request per recipient, bodies pre-rendered."""
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    out = []
    for r in _recipients(n, run):
        text = (
            SHARED if shared else TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        )
        body: dict[str, Any] = {"sender": "Acme", "content": text, "msisdns": [r.to.lstrip("+")]}
        out.append(Call("POST", url + SEND, json.dumps(body).encode(), headers))
    return out


def timed_send(client: Client, message: Message, recipients: list[Recipient]) -> float:
    """Seconds ``client.send_many`` takes; every message must be accepted."""
    with client:
        started = time.perf_counter()
        result = client.send_many(message, recipients)
        took = time.perf_counter() - started
    if not result.all_accepted:
        raise RuntimeError(f"{len(result.failed)} of {len(recipients)} sends failed, e.g. {result.failed[0].error}")
    return took


def _send(url: str, message: Message, recipients: list[Recipient]) -> float:
    return timed_send(Client("mesms", api_key=KEY, base_url=url, sender="Acme", env={}), message, recipients)


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    sample = min(n, NAIVE_SAMPLE)
    out: list[Figure] = []
    with emulator_process("mesms") as url:
        # Personalised: one request per distinct body.
        naive_personal = naive(_calls(url, sample, "naive", shared=False)) * (n / sample)
        raw_rate = capacity(_calls(url, n, "capacity", shared=False), concurrency=8)
        forget(url)
        ours = _send(url, Message(TEMPLATE, ref="bench-personal"), _recipients(n, "smsrelay"))
        sent = received(url, "POST", SEND)
        out += figures(BENCH, "personalised", n, naive_personal, ours, sent, n, raw_rate, ratio_goal=None)
        # Shared body: everyone in one request.
        naive_shared = naive(_calls(url, sample, "naive-shared", shared=True)) * (n / sample)
        forget(url)
        ours = _send(url, Message(SHARED, ref="bench-shared"), [Recipient(_number(i)) for i in range(n)])
        sent = received(url, "POST", SEND)
        out += figures(BENCH, "shared body", n, naive_shared, ours, sent, -(-n // 2_000_000), None, ratio_goal=10)
    return out
