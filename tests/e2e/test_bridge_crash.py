"""Crash safety: ``smsrelay-salesforce sync --once`` killed with SIGKILL at random points, 20 times,
then run to the end, leaves the org exactly as one clean run does: nothing sent twice, no event
lost or applied twice."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.fixtures.bridge import bridge_mapping

pytestmark = pytest.mark.slow

# 81 recipients: plain deliveries plus every sandbox outcome that produces an event.
MAGIC = ["0001", "0002", "0004", "0005", "0006", "0007", "0009"]
NUMBERS = [f"+6149157{1000 + i:04d}" for i in range(60)] + [f"+614915{7 + i}{m}" for i in range(3) for m in MAGIC]


def setup(org: Any, ca: pathlib.Path, tmp: pathlib.Path) -> tuple[pathlib.Path, dict[str, str]]:
    tmp.mkdir(parents=True, exist_ok=True)
    data = bridge_mapping(org, ca, tmp)
    # Every event is due at once (the subprocess runs on the wall clock); small batches give the
    # kills more places to land between claims, sends, write-backs and cursor commits.
    data["sms"].update(sent_after=0.0, delivered_after=0.0, reply_after=0.0)
    data["limits"] = {"batch_size": 10, "send_chunk": 25, "event_page": 20, "pull_window": 30}
    path = tmp / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "SF_TEST_TOKEN": org.issue_token(), "PYTHONUNBUFFERED": "1"}
    org.insert("SMS_Message__c", [{"To__c": n, "Body__c": f"Hello {n}", "Status__c": "Queued"} for n in NUMBERS])
    return path, env


def sync_cmd(path: pathlib.Path) -> list[str]:
    return [sys.executable, "-m", "smsrelay_salesforce.cli", "sync", "--once", "--no-progress", "-c", str(path)]


def fork_sync(path: pathlib.Path, env: dict[str, str]) -> int:
    """``smsrelay-salesforce sync --once`` in a child process; returns its pid.

    Forked rather than exec'd: the child starts with everything imported, so each kill lands
    in the bridge's work, not in Python's start-up (seconds on a busy CI machine)."""
    pid = os.fork()
    if pid == 0:  # the child: run the CLI, never return into pytest
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.environ.update(env)
            from smsrelay_salesforce.cli import main

            code = main(["sync", "--once", "--no-progress", "-c", str(path)])
        finally:
            os._exit(code)
    return pid


def run_to_end(path: pathlib.Path, env: dict[str, str], *, exec_cli: bool = False) -> float:
    """Two full cycles (the second picks up the replies and link hits the first one's sends
    caused); returns how long the first, which does the sending, took."""
    first = 0.0
    for cycle in range(2):
        started = time.monotonic()
        if exec_cli and cycle == 0:
            done = subprocess.run(sync_cmd(path), env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
        else:
            _, status = os.waitpid(fork_sync(path, env), 0)
            assert os.waitstatus_to_exitcode(status) == 0
        first = first or time.monotonic() - started
    return first


def end_state(org: Any, sandbox_db: pathlib.Path) -> dict[str, Any]:
    import sqlite3

    out = {
        r["To__c"]: (r["Status__c"], r["Delivery_Status__c"], r.get("Error_Code__c"))
        for r in org.records("SMS_Message__c", "Direction__c = 'Outbound'")
    }
    replies = Counter(
        (r["Phone_E164__c"], r["Body__c"]) for r in org.records("SMS_Message__c", "Direction__c = 'Inbound'")
    )
    threaded = sum(1 for r in org.records("SMS_Message__c", "Direction__c = 'Inbound'") if r.get("In_Reply_To__c"))
    hits = Counter(r["Phone__c"] for r in org.records("SMS_Link_Hit__c"))
    consent = sorted((r["Phone__c"], r["Opted_Out__c"]) for r in org.records("SMS_Consent__c"))
    db = sqlite3.connect(sandbox_db)
    sent = Counter(phone for (phone,) in db.execute("SELECT phone FROM messages"))
    db.close()
    return {"outbound": out, "replies": replies, "threaded": threaded, "hits": hits, "consent": consent, "sent": sent}


def test_sigkill_twenty_times_ends_like_one_clean_run(sf_org_factory, sf_tls, tmp_path) -> None:
    clean_org = sf_org_factory()
    path, env = setup(clean_org, sf_tls.ca_path, tmp_path / "clean")
    first_cycle = run_to_end(path, env)
    print(f"a clean first cycle: {first_cycle:.2f}s")
    expected = end_state(clean_org, tmp_path / "clean" / "sandbox.db")
    assert set(expected["sent"].values()) == {1} and len(expected["sent"]) == len(NUMBERS)
    assert expected["consent"] == [(f"+614915{7 + i}0007", True) for i in range(3)]

    org = sf_org_factory()
    path, env = setup(org, sf_tls.ca_path, tmp_path / "killed")
    rng = random.Random(20261125)
    kills = 0
    # Kill points spread over the first 60% of a clean sending cycle (claims, sends, write-backs,
    # event writes, cursor commits), so a sync with work left is almost always killed mid-work.
    horizon = 0.6 * first_cycle
    # Bounded: once the work is done a sync ends before its kill deadline, so "until 20 kills"
    # alone could loop forever (it once started 6,209 syncs under -n 2).
    for _attempt in range(60):
        if kills == 20:
            break
        pid = fork_sync(path, env)
        deadline = time.monotonic() + rng.uniform(0.02, horizon)
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.waitstatus_to_exitcode(status) == 0
                break
            time.sleep(0.01)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            kills += 1
    print(f"{kills} kills")
    assert kills >= 1  # at least one sync died mid-work, or the test proves nothing
    # The last run starts through the real command line, start to finish.
    run_to_end(path, env, exec_cli=True)
    got = end_state(org, tmp_path / "killed" / "sandbox.db")
    assert got["sent"] == expected["sent"]  # every number exactly once
    assert got == expected
