"""Two reference clients for the send benchmarks: the naive loop and the raw load generator.

``naive`` is what a workflow step with curl in a loop does: one ``requests`` call per
message, a new connection each time, no batching. ``capacity`` measures what the emulator
itself can take: pre-built requests over persistent connections, with no client logic, so
smsrelay's throughput can be shown as a fraction of it.

For the fraction to be fair the generator sends the same request smsrelay sends (the
headers every smsrelay request carries, under the call's own), at the same concurrency
as the client (8 workers by default for every provider), with the URL work done before
the clock starts.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

# The headers every smsrelay request carries besides the adapter's own (Transport's session
# defaults); without them the emulator parses fewer headers for the generator than for smsrelay.
CLIENT_HEADERS = {"User-Agent": "smsrelay", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


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


SETTLE_FROM = 1_000


def settle(base_url: str, *, limit: float = 60.0) -> None:
    """Wait until the emulator has run every timed event (delivery reports, replies) it has due.

    Each send schedules reports seconds later; without this the run measured after the
    capacity load pays for the tail of that load's reports as well as its own.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            resp = requests.get(base_url + "/_emulator/timers", timeout=10)
        except requests.RequestException:
            return
        if resp.status_code != 200 or not int(resp.json().get("pending", 0)):
            return
        time.sleep(0.5)


def capacity(calls: Sequence[Call], *, concurrency: int = 8) -> float:
    """Requests per second the server sustains for these calls over keep-alive connections.

    ``concurrency`` should be the client's own (``Capabilities.concurrency`` unless set).
    From ``SETTLE_FROM`` calls the emulator is settled before and after (see ``settle``),
    so the next measurement starts from the same quiet state this one did.
    """
    parts = urlsplit(calls[0].url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    origin = f"{parts.scheme}://{parts.netloc}"
    # A smoke-sized load leaves a tail too small to matter; waiting for it would not be.
    quiet = len(calls) >= SETTLE_FROM
    if quiet:
        settle(origin)
    lock = threading.Lock()
    todo = list(range(len(calls)))
    errors: list[str] = []
    built = []
    for c in calls:
        target = urlsplit(c.url)
        path = target.path + (f"?{target.query}" if target.query else "")
        own = {k.lower() for k in c.headers}
        headers = {k: v for k, v in CLIENT_HEADERS.items() if k.lower() not in own} | c.headers
        built.append((c.method, path, c.body, headers))

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            method, path, body, headers = built[i]
            conn.request(method, path, body=body, headers=headers)
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
    if quiet:
        settle(origin)
    if errors:
        raise RuntimeError(f"the load generator got {len(errors)} errors, e.g. {errors[0]}")
    return len(calls) / elapsed
