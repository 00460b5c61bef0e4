"""The loopback half of the send benches: the emulator with no latency and no limit, and its figures.

Information only (no goal): smsrelay's send_many against the naive loop and against what the
emulator itself takes (``bench/load.py``), with nothing on the wire to wait for.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from bench.limits import emulator_process
from bench.report import Figure
from smsrelay import Client, Message, Recipient


def loopback_emulator(name: str) -> AbstractContextManager[str]:
    """``smsrelay emulate NAME`` in its own process with no latency and no rate limit; its URL."""
    return emulator_process(name, "--rate-limit", "off")


def loopback_figures(
    bench: str, how: str, n: int, naive_seconds: float, ours: float, raw_rate: float | None, *, connections: int = 8
) -> list[Figure]:
    """The loopback figures of one campaign: information, no goal.

    ``raw_rate`` is the load generator's, on as many ``connections`` as the client keeps in flight.
    """
    rate = n / ours
    out = [
        Figure(bench, f"loopback: {how}: send_many vs naive loop (wall)", naive_seconds / ours, "×",
               detail=f"{n:,} recipients, limits lifted; naive {naive_seconds:.1f}s, send_many {ours:.2f}s"),
    ]  # fmt: skip
    if raw_rate is not None:
        load = f"load generator {raw_rate:,.0f} req/s ({connections} connections)"
        out.append(
            Figure(bench, f"loopback: {how}: throughput vs emulator capacity", 100 * rate / raw_rate, "%",
                   detail=f"send_many {rate:,.0f} msg/s, {load}")
        )  # fmt: skip
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
