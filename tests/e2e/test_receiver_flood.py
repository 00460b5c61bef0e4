"""The flood: 10,000 webhook requests on loopback, a SIGKILL mid-flood, nothing lost or doubled.

``smsrelay webhooks serve`` runs as a subprocess on a temporary SQLite inbox.
Concurrent clients retry every request that got no 2xx, as providers do; 1% of
requests are redeliveries and 1% carry a wrong token.
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from smsrelay.inbox import open_inbox
from smsrelay.model import Reply
from tests.fixtures.receiver import SANDBOX_TOKEN, sandbox_push

REQUESTS = 10_000
CLIENTS = 16
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config, port, inbox_path, log):
    cmd = [sys.executable, "-m", "smsrelay", "webhooks", "serve", "--config", str(config), "--port", str(port)]
    cmd += ["--inbox", str(inbox_path), "--quiet", "--compact-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the receiver exited"
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.05)
    raise AssertionError("the receiver did not become ready")


@pytest.mark.slow
def test_flood_with_sigkill_loses_nothing_and_doubles_nothing(tmp_path):
    config = tmp_path / "receiver.yaml"
    config.write_text(f"provider: sandbox\nwebhook_secret: {SANDBOX_TOKEN}\npath: {tmp_path / 'sbx.db'}\n")
    inbox_path = tmp_path / "inbox.db"
    port = free_port()
    rng = random.Random(5)

    valid = [Reply(f"flood-{n}", "sandbox", "+61491570156", T0, f"mo-{n}", text=f"r{n}") for n in range(9_800)]
    jobs = [(sandbox_push(e), SANDBOX_TOKEN, True) for e in valid]
    jobs += [(sandbox_push(rng.choice(valid)), SANDBOX_TOKEN, True) for _ in range(100)]  # redeliveries
    bad = [Reply(f"forged-{n}", "sandbox", "+61491570156", T0, f"x-{n}", text="forged") for n in range(100)]
    jobs += [(sandbox_push(e), "forged-" + SANDBOX_TOKEN, False) for e in bad]
    rng.shuffle(jobs)
    assert len(jobs) == REQUESTS

    log = open(tmp_path / "receiver.log", "wb")  # noqa: SIM115
    proc = start_server(config, port, inbox_path, log)
    lock = threading.Lock()
    outcome = {"ok": 0, "refused": 0, "retries": 0, "done": 0}
    next_job = iter(range(REQUESTS))
    deadline = time.monotonic() + 120

    def client() -> None:
        # http.client keeps the clients cheap: the machine's cores should go to the server.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while True:
            with lock:
                i = next(next_job, None)
            if i is None:
                conn.close()
                return
            body, token, _ = jobs[i]
            headers = {"X-Smsrelay-Token": token, "Content-Type": "application/json"}
            while time.monotonic() < deadline:
                try:
                    conn.request("POST", "/webhooks/sandbox", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status in (200, 401):
                        with lock:
                            outcome["ok" if resp.status == 200 else "refused"] += 1
                            outcome["done"] += 1
                        break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                with lock:
                    outcome["retries"] += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        while outcome["done"] < REQUESTS // 3:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-flood, requests in flight
        proc.wait(10)
        killed_at = outcome["done"]
        proc = start_server(config, port, inbox_path, log)
        for t in threads:
            t.join(150)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()

    assert killed_at < REQUESTS
    assert outcome["retries"] > 0, "the kill should have cut requests in flight"
    assert outcome["done"] == REQUESTS, outcome
    assert outcome["refused"] == 100
    assert outcome["ok"] == 9_900
    inbox = open_inbox(inbox_path)
    stored = [e.event_id for e in inbox.read("check", limit=20_000)]
    inbox.close()
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert set(stored) == {e.event_id for e in valid}, "an event was lost or a forged one was stored"
