"""The webhook receiver's throughput: events accepted per second, with p50 and p99 latency.

``smsrelay webhooks serve`` runs as its own process (one uvicorn worker per
replica), with token verification on, storing into an SQLite inbox, then into a
PostgreSQL one (a throwaway server on loopback, skipped when Debian's postgresql is
missing) with one replica and with two. Sixteen keep-alive connections post one
event per request, as providers push, and each waits for its answer before the
next: every request is answered 200 only after its event is committed.

The machine's cores are shared by the load generator, the receiver(s) and
PostgreSQL, so the generator is as cheap as a client can be: one thread,
non-blocking sockets, every request pre-built as bytes. Each figure's detail says
how the CPU was split between the three.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Figure
from smsrelay.inbox import open_inbox
from smsrelay.model import Reply, event_to_dict

TOKEN = "bench-webhook-token-0123456789"
CONCURRENCY = 16
GOAL_RATE = 2_000.0  # events/s on SQLite
GOAL_P99_MS = 50.0
GOAL_SCALE = 1.5  # two replicas on one PostgreSQL, against one


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


def _request(body: bytes) -> bytes:
    head = (
        f"POST /webhooks/sandbox HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Smsrelay-Token: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class _Conn:
    sock: socket.socket
    index: int = -1
    sent_at: float = 0.0
    buffer: bytes = b""


def _flood(ports: Sequence[int], requests: Sequence[bytes]) -> tuple[float, list[float]]:
    """Send every request over CONCURRENCY keep-alive connections spread over ``ports``.

    One thread multiplexes them; each connection keeps one request in flight. Returns
    the seconds taken and each request's latency; raises if any answer was not 200.
    """
    sel = selectors.DefaultSelector()
    latencies = [0.0] * len(requests)
    todo = iter(range(len(requests)))
    failures: list[bytes] = []

    def send(conn: _Conn) -> bool:
        i = next(todo, None)
        if i is None:
            sel.unregister(conn.sock)
            conn.sock.close()
            return False
        conn.index, conn.sent_at, conn.buffer = i, time.perf_counter(), b""
        conn.sock.sendall(requests[i])
        return True

    started = time.perf_counter()
    open_conns = 0
    for c in range(min(CONCURRENCY, len(requests))):
        port = ports[c % len(ports)]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        open_conns += send(conn)
    while open_conns:
        ready = sel.select(30)
        if not ready:
            raise RuntimeError("the receiver stopped answering")
        for key, _ in ready:
            conn = key.data
            chunk = conn.sock.recv(65536)
            if not chunk:
                raise RuntimeError("the receiver closed a connection")
            conn.buffer += chunk
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = conn.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None]) if at >= 0 else 0
            if len(conn.buffer) < end + 4 + length:
                continue
            latencies[conn.index] = time.perf_counter() - conn.sent_at
            if not head.startswith(b"http/1.1 200"):
                failures.append(conn.buffer[: end + 4 + length])
            if not send(conn):
                open_conns -= 1
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0][:300]!r}")
    return elapsed, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds every core has spent busy since boot (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu: str
    receiver_us: float  # receiver CPU per event, all replicas together
    receiver_cores: float  # all replicas together
    total_us: float  # CPU per event of the receivers, PostgreSQL and the load generator together


def _database_pids(inbox_url: str) -> list[int]:
    """PostgreSQL's processes serving ``inbox_url``'s server (none for SQLite)."""
    if not inbox_url.startswith("postgresql://"):
        return []
    import psycopg

    with psycopg.connect(inbox_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()").fetchall()
    return [int(r[0]) for r in rows]


def _measure(label: str, inbox_url: str, workdir: Path, n: int, replicas: int = 1) -> _Run:
    config = workdir / f"{label}.yaml"
    config.write_text(f"provider: sandbox\nwebhook_secret: {TOKEN}\npath: {workdir / 'sandbox.db'}\n")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = [
        json.dumps(
            {"events": [event_to_dict(Reply(f"{label}-{i}", "sandbox", "+61491570156", at, f"mo{i}", text="YES"))]}
        ).encode()
        for i in range(n)
    ]
    ports = [_free_port() for _ in range(replicas)]
    procs = [_start(config, inbox_url, port, workdir / f"{label}-{port}.log") for port in ports]
    try:
        requests = [_request(b) for b in bodies]
        warm = max(CONCURRENCY, n // 20)
        _flood(ports, requests[:warm])  # connections, tables, page cache
        db_pids = _database_pids(inbox_url)
        server_cpu = [_cpu_seconds(p.pid) for p in procs]
        db_cpu = sum(_cpu_seconds(p) for p in db_pids)
        own_cpu, busy = time.process_time(), _machine_busy()
        elapsed, latencies = _flood(ports, requests[warm:])
        own_cpu, busy = time.process_time() - own_cpu, _machine_busy() - busy
        server_cpu = [_cpu_seconds(p.pid) - c for p, c in zip(procs, server_cpu, strict=True)]
        db_cpu = sum(_cpu_seconds(p) for p in db_pids) - db_cpu
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    inbox = open_inbox(inbox_url)
    stored = inbox.count()
    inbox.close()
    if stored != n:
        raise RuntimeError(f"{label}: {stored} events stored for {n} requests")
    cuts = statistics.quantiles(latencies, n=100)
    cores = " + ".join(f"{c / elapsed:.2f}" for c in server_cpu)
    others = max(0.0, busy - own_cpu - sum(server_cpu) - db_cpu) / elapsed
    cpu = f"CPU in cores: receiver {cores}, load generator {own_cpu / elapsed:.2f}"
    cpu += f", PostgreSQL {db_cpu / elapsed:.2f}" if db_pids else ""
    cpu += f", other processes {others:.2f}, of {os.cpu_count()}"
    per_event = sum(server_cpu) / (n - warm) * 1e6
    total = (sum(server_cpu) + own_cpu + db_cpu) / (n - warm) * 1e6
    rate = (n - warm) / elapsed
    return _Run(rate, cuts[49] * 1000, cuts[98] * 1000, cpu, per_event, sum(server_cpu) / elapsed, total)


def _figures(name: str, r: _Run, detail: str, *, goals: bool, smoke: bool = False) -> list[Figure]:
    """Rate, p50, p99 and receiver CPU per event of one run; the goals apply to SQLite's.

    A smoke run shows the goals but judges none: its few events show the bench runs, not how fast.
    """
    where = f"{detail}; {r.cpu}"
    judge = goals and not smoke
    return [
        Figure(
            "webhooks",
            f"{name}: accepted",
            r.rate,
            "events/s",
            f"≥ {GOAL_RATE:,.0f}" if goals else None,
            r.rate >= GOAL_RATE if judge else None,
            where,
        ),
        Figure("webhooks", f"{name}: p50 latency", r.p50_ms, "ms", detail=where),
        Figure(
            "webhooks",
            f"{name}: p99 latency",
            r.p99_ms,
            "ms",
            f"< {GOAL_P99_MS:.0f}" if goals else None,
            r.p99_ms < GOAL_P99_MS if judge else None,
            where,
        ),
        # CPU per event depends far less than the rate on what else the machine runs.
        Figure("webhooks", f"{name}: receiver CPU per event", r.receiver_us, "µs", detail=where),
    ]


def run(smoke: bool) -> list[Figure]:
    """Events per second the receiver accepts, for SQLite and PostgreSQL inboxes."""
    n = 300 if smoke else 20_000
    detail = f"{CONCURRENCY} keep-alive connections, 1 event a request, token verified, loopback"
    figures: list[Figure] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smsrelay-bench-")))
        lite = _measure("sqlite", str(workdir / "inbox.db"), workdir, n)
        figures += _figures("receiver → SQLite inbox", lite, detail, goals=True, smoke=smoke)
        try:
            from tests.fixtures.postgres import create_database, temporary_postgres

            server = stack.enter_context(temporary_postgres())
        except (ImportError, FileNotFoundError, RuntimeError) as exc:
            print(f"# webhooks: PostgreSQL skipped: {exc}", file=sys.stderr)
            return figures
        # The throwaway server runs with fsync=off: this measures the receivers, not the disk.
        one = _measure("pg1", create_database(server), workdir, n, replicas=1)
        two = _measure("pg2", create_database(server), workdir, n, replicas=2)
        figures += _figures("receiver → PostgreSQL, 1 replica", one, detail, goals=False)
        figures += _figures("receiver → PostgreSQL, 2 replicas", two, detail, goals=False)
        ratio = two.rate / one.rate
        # With every core busy at the two-replica run's CPU per event, no more events fit.
        ceiling = (os.cpu_count() or 1) / two.total_us * 1e6
        figures.append(
            Figure(
                "webhooks",
                "receiver → PostgreSQL: 2 replicas ÷ 1",
                ratio,
                "×",
                f"≥ {GOAL_SCALE}",
                None if smoke else ratio >= GOAL_SCALE,
                f"{two.rate:,.0f} ÷ {one.rate:,.0f} events/s; receiver CPU per event {one.receiver_us:.0f} µs"
                f" with 1 replica, {two.receiver_us:.0f} µs with 2; receiver cores {one.receiver_cores:.2f} with"
                f" 1 replica, {two.receiver_cores:.2f} with 2 ({two.cpu}). A replica is one Python process, held"
                " to one core: two replicas gain only the CPU that the second core has left after the load"
                " generator, PostgreSQL and other processes, and each batches half as many requests per"
                " commit and per loop turn, so it spends more CPU per event. At that run's CPU per event"
                f" (receivers, PostgreSQL and load generator: {two.total_us:.0f} µs), {os.cpu_count()} cores"
                f" fit at most {ceiling:,.0f} events/s, {ceiling / one.rate:.2f}× one replica's rate",
                closes="a core per replica, with PostgreSQL and the load generator on other cores or hosts",
            )
        )
    return figures
