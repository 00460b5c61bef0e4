"""The webhook receiver's throughput: events accepted per second, with p50 and p99 latency.

``smsrelay webhooks serve`` runs as its own process (one uvicorn worker), with
token verification on, storing into an SQLite inbox and then a PostgreSQL one (a
throwaway server on loopback, skipped when Debian's postgresql is missing).
Concurrent keep-alive clients post one event per request, as providers push;
every request must be answered 200 only after its event is committed.
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Figure
from smsrelay.inbox import open_inbox
from smsrelay.model import Reply, event_to_dict

TOKEN = "bench-webhook-token-0123456789"
CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(config: Path, inbox_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "smsrelay", "webhooks", "serve", "--config", str(config), "--port", str(port)]
    cmd += ["--inbox", inbox_url, "--quiet", "--compact-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the receiver exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the receiver did not become ready")


def _flood(port: int, bodies: list[bytes]) -> tuple[float, list[float]]:
    """Post every body with CONCURRENCY keep-alive clients; seconds taken and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(range(len(bodies)))
    errors: list[str] = []
    headers = {"X-Smsrelay-Token": TOKEN, "Content-Type": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            t = time.perf_counter()
            conn.request("POST", "/webhooks/sandbox", body=bodies[i], headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t)
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return elapsed, latencies


def _measure(backend: str, inbox_url: str, workdir: Path, n: int) -> list[Figure]:
    config = workdir / f"{backend}.yaml"
    config.write_text(f"provider: sandbox\nwebhook_secret: {TOKEN}\npath: {workdir / 'sandbox.db'}\n")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = [
        json.dumps(
            {"events": [event_to_dict(Reply(f"{backend}-{i}", "sandbox", "+61491570156", at, f"mo{i}", text="YES"))]}
        ).encode()
        for i in range(n)
    ]
    port = _free_port()
    proc = _start(config, inbox_url, port, workdir / f"{backend}.log")
    try:
        _flood(port, bodies[: max(1, n // 20)])  # warm up: connections, tables, page cache
        elapsed, latencies = _flood(port, bodies)
    finally:
        proc.terminate()
        proc.wait(10)
    inbox = open_inbox(inbox_url)
    stored = inbox.count()
    inbox.close()
    if stored != n:
        raise RuntimeError(f"{backend}: {stored} events stored for {n} requests")
    cuts = statistics.quantiles(latencies, n=100)
    detail = f"{n} requests, {CONCURRENCY} concurrent clients, 1 event each, token verified, loopback"
    name = f"receiver → {backend} inbox"
    return [
        Figure("webhooks", f"{name}: accepted", n / elapsed, "events/s", detail=detail),
        Figure("webhooks", f"{name}: p50 latency", cuts[49] * 1000, "ms", detail=detail),
        Figure("webhooks", f"{name}: p99 latency", cuts[98] * 1000, "ms", detail=detail),
    ]


def run(smoke: bool) -> list[Figure]:
    """Events per second the receiver accepts, for SQLite and PostgreSQL inboxes."""
    n = 200 if smoke else 5_000
    figures: list[Figure] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smsrelay-bench-")))
        figures += _measure("sqlite", str(workdir / "inbox.db"), workdir, n)
        try:
            from tests.fixtures.postgres import create_database, temporary_postgres

            server = stack.enter_context(temporary_postgres())
        except (ImportError, FileNotFoundError, RuntimeError) as exc:
            print(f"# webhooks: PostgreSQL skipped: {exc}", file=sys.stderr)
        else:
            # The throwaway server runs with fsync=off: this measures the receiver, not the disk.
            figures += _measure("postgresql", create_database(server), workdir, n)
    return figures
