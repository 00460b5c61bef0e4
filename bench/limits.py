"""Sends against the physical limit: 150 ms latency, the documented rate limit, a shared scaled clock.

Each provider path runs against its emulator in its own process (``smsrelay emulate NAME
--latency 150ms --jitter 30ms --rate-limit documented``) on a :class:`ScaledClock` that
the client shares (same speed and epoch), so SMSKit's 100 requests an hour takes seconds.
Every time below is simulated time: real time × the clock's speed.

The theoretical minimum of a send of F requests is the later of two bounds: the rate
limit's (a sliding window of k requests per P seconds lets the last request go at
(⌈F/k⌉ − 1) × P, answered one latency later) and the client's concurrency's (c requests
in flight, each taking the mean latency: F × latency ÷ c). Client CPU is not in it: the
minimum is what the wire allows.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import requests

from bench import script
from bench.load import Call
from bench.report import Figure
from smsrelay import Client, Message, Recipient
from smsrelay.clock import ScaledClock

LATENCY, JITTER = 0.150, 0.030  # seconds: the emulators' answer time, ± uniform
SEED = 17
# The baselines are timed on samples of about this many real seconds, scaled by their bound (_scaled).
SAMPLE_SECONDS = 5.0
NAIVE_SAMPLE = 100
RATIO_GOAL = 1.05
SCRIPT_MARGIN = 1.02


@dataclass(frozen=True)
class Limit:
    """A rate limit as the emulator enforces it: ``requests`` in any ``per`` seconds."""

    requests: int
    per: float
    retry_after: bool

    def describe(self) -> str:
        per = f"{self.per / 3600:g} h" if self.per >= 3600 else f"{self.per:g} s"
        return f"{self.requests:,} per {per}"


@dataclass(frozen=True)
class Emulator:
    """A running emulator process and the clock it shares with the bench."""

    url: str
    clock: ScaledClock
    limit: Limit | None

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = requests.get(self.url + "/_emulator/stats", timeout=60).json()
        return out

    def reset(self) -> None:
        requests.post(self.url + "/_emulator/reset", timeout=60).raise_for_status()


@contextmanager
def emulator_process(name: str, *flags: str) -> Iterator[str]:
    """Run ``smsrelay emulate NAME FLAGS…`` on a free port in its own process; yield its URL."""
    cmd = [sys.executable, "-m", "smsrelay", "emulate", name, "--port", "0", *flags]
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


@contextmanager
def emulator(name: str, *, speed: float, rate_limit: str = "documented") -> Iterator[Emulator]:
    """``smsrelay emulate NAME`` with 150 ms ± 30 ms latency and ``rate_limit``, on a clock ``speed``× real time."""
    epoch = time.time()
    flags = ["--latency", f"{LATENCY}s", "--jitter", f"{JITTER}s", "--rate-limit", rate_limit, "--seed", str(SEED)]
    flags += ["--clock-speed", repr(speed), "--clock-epoch", repr(epoch)]
    with emulator_process(name, *flags) as url:
        clock = ScaledClock(speed, epoch=epoch)
        found = Emulator(url, clock, None).stats().get("rate_limit")
        limit = Limit(int(found["requests"]), float(found["per"]), bool(found["retry_after"])) if found else None
        yield Emulator(url, clock, limit)


def minimum(requests_: int, limit: Limit | None, concurrency: int) -> float:
    """The earliest simulated second the last of ``requests_`` can be answered (see the module doc)."""
    if requests_ <= 0:
        return 0.0
    by_rate = (math.ceil(requests_ / limit.requests) - 1) * limit.per + LATENCY if limit else LATENCY
    by_concurrency = requests_ * LATENCY / concurrency
    return max(by_rate, by_concurrency)


# What the client CPU per message is made of, where no path says more.
CPU = (
    "a faster host, or a lighter HTTP layer than requests: a personalised message is one request, and "
    "most of its CPU is requests' own work per call (the capable script's, in the same row), which moves "
    "with the host's speed (see dag_parse's baseline in the same run)"
)


@dataclass(frozen=True)
class Run:
    """One timed send: simulated seconds, requests the emulator received, the 429s among them."""

    seconds: float
    requests: int
    throttled: int
    cpu: float = 0.0  # client process CPU seconds


def _timed(emu: Emulator, send: Callable[[], object]) -> Run:
    emu.reset()
    cpu, began = time.process_time(), emu.clock.now()
    send()
    took = (emu.clock.now() - began).total_seconds()
    cpu = time.process_time() - cpu
    stats = emu.stats()
    return Run(took, int(stats["requests"]), int(stats["rate_limited"]), cpu)


def _scaled(run: Run, sample: int, full: int, bound: Callable[[int], float]) -> Run:
    """A baseline timed on ``sample`` requests, scaled to ``full``: the same share of its bound.

    Rate-held or concurrency-held, a baseline's time tracks its bound; scaling by the bound
    (not by the count) keeps a rate window's whole-window steps right.
    """
    if sample >= full:
        return run
    factor = bound(full) / bound(sample)
    return Run(run.seconds * factor, round(run.requests * full / sample), round(run.throttled * full / sample))


def personalised(n: int, run: str, number: Callable[[int], str]) -> list[Recipient]:
    """``n`` recipients numbered by ``number``, each with its own ``name`` (tagged ``run``) and ``code``."""
    return [
        Recipient(number(i), vars={"name": f"Customer {run}{i}", "code": f"{i * 7919 % 10**6:06d}"}) for i in range(n)
    ]


@dataclass(frozen=True)
class Path:
    """One provider path: its client, message and recipients, and the baselines' requests."""

    bench: str
    label: str  # e.g. "V2, personalised"
    emulator: str  # the ``smsrelay emulate`` name
    speed: float  # simulated seconds per real second
    client: Callable[[ScaledClock, str], Client]  # (clock, base URL) → a client as shipped
    message: Message
    recipients: Sequence[Recipient]
    calls: Callable[[str, int], list[Call]]  # (base URL, n) → one pre-built request per recipient
    floor: int  # the fewest requests the API allows for the send
    concurrency: int  # the client's (as shipped); the script uses 8
    closes: dict[str, str]  # figure key → what would close it, if missed


def measure(path: Path, *, smoke: bool) -> list[Figure]:
    """smsrelay's send on ``path``, then the script's and the naive loop's, against the limit."""
    n = len(path.recipients)
    with emulator(path.emulator, speed=path.speed) as emu:
        with path.client(emu.clock, emu.url) as client:
            unsent: list[str] = []

            def send() -> None:
                result = client.send_many(path.message, list(path.recipients))
                unsent.extend(r.error or str(r.status) for r in result.results if not r.accepted)

            ours = _timed(emu, send)
        per_request = minimum(1_000, emu.limit, script.WORKERS) / 1_000  # simulated seconds, at the bound
        s_n = min(n, max(50, round(SAMPLE_SECONDS * path.speed / per_request)))
        s_calls = path.calls(emu.url, s_n)
        s_raw = _timed(emu, lambda: script.script(s_calls, emu.clock))
        v_n = min(n, NAIVE_SAMPLE, max(20, round(SAMPLE_SECONDS / 2 * path.speed / LATENCY)))  # one at a time
        v_calls = path.calls(emu.url, v_n)
        v_raw = _timed(emu, lambda: script.naive(v_calls, emu.clock))
    limit = emu.limit
    best = minimum(path.floor, limit, path.concurrency)
    s_run = _scaled(s_raw, s_n, n, lambda k: minimum(k, limit, script.WORKERS))
    v_run = _scaled(v_raw, v_n, n, lambda k: max(minimum(k, limit, 1), k * v_raw.seconds / max(1, v_n)))
    script_best = minimum(n, limit, script.WORKERS)  # one request per recipient
    script_cpu = s_raw.cpu / max(1, s_raw.requests)  # requests alone, on the same waits
    out = _figures(path, n, limit, best, ours, s_run, v_run, s_n, v_n, script_best, script_cpu, smoke)
    out.insert(3, Figure(path.bench, f"{path.label}: messages not sent", len(unsent), "messages", goal="0",
                         met=None if smoke else not unsent,
                         detail=f"e.g. {unsent[0]}" if unsent else f"{n:,} accepted",
                         closes=path.closes.get("unsent", path.closes.get("429", ""))))  # fmt: skip
    return out


def _fmt_s(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:,.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds:,.2f} s"


def _figures(
    path: Path,
    n: int,
    limit: Limit | None,
    best: float,
    ours: Run,
    s_run: Run,
    v_run: Run,
    s_n: int,
    v_n: int,
    script_best: float,
    script_cpu: float,
    smoke: bool,
) -> list[Figure]:
    label, bench = path.label, path.bench
    held = f"limit {limit.describe()}" if limit else "no documented limit"
    how = (
        f"{n:,} messages, {held}, latency {LATENCY * 1000:g} ± {JITTER * 1000:g} ms, "
        f"clock {path.speed:g}× real time, smsrelay concurrency {path.concurrency}"
    )
    ratio = ours.seconds / best
    s_note = f"script timed on {s_n:,} and scaled by its bound" if s_n < n else "script"
    v_note = f"naive loop timed on {v_n:,} and scaled" if v_n < n else "naive loop"
    vs_script = ours.seconds / s_run.seconds
    # Held by the same bound, the same wall; where smsrelay's floor is lower (batching), faster by
    # as much as the two minimums differ (the batching factor, as far as latency lets it show).
    factor = script_best / best
    if factor <= 1.0 + 1e-9:
        script_goal = f"≤ {SCRIPT_MARGIN:g}× the script's wall"
    else:
        script_goal = f"≤ {SCRIPT_MARGIN:g}/{factor:,.0f} of the script's (the minimums' ratio)"
    script_met = vs_script <= SCRIPT_MARGIN / max(1.0, factor)
    cpu_us = ours.cpu / n * 1e6
    closes = dict(path.closes)
    if ours.throttled and "ratio" not in closes:
        closes["ratio"] = f"the 429s: each costs a request and a backoff. {closes.get('429', '')}".strip()
    if "script" not in closes and closes.get("ratio"):
        closes["script"] = f"the gap to the minimum above: {closes['ratio']}"

    def judge(met: bool) -> bool | None:
        return None if smoke else met  # smoke sizes show the bench runs, not how fast

    out = [
        Figure(bench, f"{label}: wall ÷ theoretical minimum", ratio, "×", goal=f"≤ {RATIO_GOAL:g}",
               met=judge(ratio <= RATIO_GOAL),
               detail=f"{how}; smsrelay {_fmt_s(ours.seconds)}, minimum {_fmt_s(best)}",
               closes=closes.get("ratio", "")),
        Figure(bench, f"{label}: 429s received", ours.throttled, "429s", goal="0", met=judge(ours.throttled == 0),
               detail=how, closes=closes.get("429", "")),
        Figure(bench, f"{label}: requests", ours.requests, "requests", goal=f"= floor {path.floor:,}",
               met=judge(ours.requests == path.floor), detail=f"{how}; 429s included",
               closes=closes.get("requests", closes.get("429", ""))),
        Figure(bench, f"{label}: wall vs capable script", vs_script, "×", goal=script_goal,
               met=judge(script_met),
               detail=f"smsrelay {_fmt_s(ours.seconds)}, {s_note}: {_fmt_s(s_run.seconds)}, "
                      f"{s_run.requests:,} requests, {s_run.throttled:,} × 429",
               closes=closes.get("script", "")),
        Figure(bench, f"{label}: script's 429s / requests (baseline)", s_run.throttled, "429s",
               detail=f"{s_note}: {s_run.requests:,} requests for {n:,} messages"),
        Figure(bench, f"{label}: naive loop ÷ smsrelay (wall)", v_run.seconds / ours.seconds, "×",
               detail=f"{v_note}: {_fmt_s(v_run.seconds)}, {v_run.throttled:,} × 429"),
        Figure(bench, f"{label}: client CPU per message", cpu_us, "µs", goal="≤ 2,000 µs",
               met=judge(cpu_us <= 2000),
               detail=f"process CPU of the client (HTTP included) over {n:,} messages, {ours.requests:,} requests",
               closes=closes.get("cpu", CPU)),
        Figure(bench, f"{label}: script's CPU per request (baseline)", script_cpu * 1e6, "µs",
               detail="requests alone, bodies built beforehand, on the same latency and limit"),
    ]  # fmt: skip
    return out
