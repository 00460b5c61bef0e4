"""Two reference clients for the send benchmarks: the naive loop and the raw load generator.

``naive`` is what a workflow step with curl in a loop does: one ``requests`` call per
message, a new connection each time, no batching. ``capacity`` measures what the emulator
itself can take: pre-built requests over persistent connections, with no client logic, so
smsrelay's throughput can be shown as a fraction of it.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests


@dataclass(frozen=True)
class Call:
    """One pre-built HTTP request."""

    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def naive(calls: Sequence[Call]) -> float:
    """Send each call with a fresh ``requests`` connection, one after another; seconds taken."""
    started = time.perf_counter()
    for c in calls:
        resp = requests.request(c.method, c.url, data=c.body, headers={**c.headers, "Connection": "close"}, timeout=30)
        resp.raise_for_status()
    return time.perf_counter() - started


def capacity(calls: Sequence[Call], *, concurrency: int = 8) -> float:
    """Requests per second the server sustains for these calls over keep-alive connections."""
    parts = urlsplit(calls[0].url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    todo = list(range(len(calls)))
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            c = calls[i]
            target = urlsplit(c.url)
            path = target.path + (f"?{target.query}" if target.query else "")
            conn.request(c.method, path, body=c.body, headers=c.headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 400:
                errors.append(f"{resp.status}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"the load generator got {len(errors)} errors, e.g. {errors[0]}")
    return len(calls) / elapsed
