"""Salesforce sync: API calls per phase against the floor, wall time against the naive way, and pull memory.

1. **Sync at N queued records** (10,000; 300 in smoke), in Collections mode and in Bulk API 2.0 mode,
   against the HTTPS org emulator and the sandbox provider: Salesforce calls per phase against the floor
   (⌈N/200⌉ in Collections mode; a Bulk 2.0 job's handful of calls), goal ≤ floor + 10.
2. **The naive way**: one REST call per record, as a script on simple-salesforce does it (claim, then write
   back, then one upsert per delivery report). Its wall time is measured on a sample and scaled to N.
3. **``sync --follow`` latency**: N delivery reports (2,000; 200 in smoke) pushed one webhook each to the
   receiver (uvicorn, a SQLite inbox), followed into the org emulator by the bridge's follower on the wall
   clock: the p50 and p95 seconds from the receiver's 2xx to the record showing ``Delivered``, and the
   Salesforce calls per 1,000 events.
4. **Peak RSS of the bridge pulling 100,000 delivery events** in a child process, so the figure is the
   bridge's memory alone, with a 10,000-event run as the baseline for flatness. Goal < 150 MB. Smoke pulls
   1,000 events and skips the baseline.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.report import Figure
from smsrelay import ManualClock

BENCH = "salesforce"
MSG = "SMS_Message__c"
FULL, SMOKE = 10_000, 100
PULL_FULL, PULL_SMOKE, PULL_BASE = 100_000, 1_000, 10_000
FOLLOW_FULL, FOLLOW_SMOKE = 2_000, 200
FOLLOW_TOKEN = "bench-follow-token-0123456789"
NAIVE_SAMPLE_FULL, NAIVE_SAMPLE_SMOKE = 500, 20


def _mapping(org: Any, ca: Path, tmp: Path, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "salesforce": {"auth": "token", "instance_url": org.url, "access_token": "${SF_TOKEN}", "ca_bundle": str(ca)},
        "sms": {
            "provider": "sandbox",
            "path": str(tmp / "sandbox.db"),
            "sent_after": 0.0,
            "delivered_after": 1.0,
            "reply_after": 1.0,
            "default_region": "AU",
        },
        "send": {"country": "AU", "sender": "Acme"},
        "limits": limits or {},
        "state_file": str(tmp / "bridge-state.db"),
    }


def _queue(org: Any, n: int) -> None:
    # The sandbox picks an outcome by the last four digits (0001 failed ...); 1000-9999 are plain deliveries.
    numbers = [f"+6141{i // 9000:03d}{1000 + i % 9000:04d}" for i in range(n)]
    for start in range(0, n, 10_000):
        org.insert(
            MSG,
            [
                {"To__c": num, "Body__c": "Your appointment is tomorrow", "Status__c": "Queued"}
                for num in numbers[start : start + 10_000]
            ],
        )


class _Org:
    """An HTTPS org emulator with its CA, a bridge config builder and a clock."""

    def __init__(self, stack: ExitStack, tmp: Path) -> None:
        from smsrelay_salesforce.testing import OrgEmulator, make_tls

        self.tmp = tmp
        self.clock = ManualClock()
        tls = make_tls(tmp)
        self.ca = tls.ca_path
        self.org = stack.enter_context(OrgEmulator(ssl_context=tls.ssl_context, clock=self.clock))

    def bridge(self, stack: ExitStack, limits: dict[str, Any] | None = None) -> Any:
        from smsrelay_salesforce.config import config_from_mapping
        from smsrelay_salesforce.sync import Bridge

        config = config_from_mapping(
            _mapping(self.org, self.ca, self.tmp, limits), env={"SF_TOKEN": self.org.issue_token()}
        )
        return stack.enter_context(Bridge(config, clock=self.clock, bulk_poll=0.01))


def _sync(mode: str, n: int) -> dict[str, Any]:
    """Push n queued records, then pull their delivery reports; calls per phase and seconds."""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-sf-") as tmp:
        env = _Org(stack, Path(tmp))
        _queue(env.org, n)
        limits = {"bulk_threshold": 100_000_000} if mode == "collections" else {"bulk_threshold": 2000}
        bridge = env.bridge(stack, limits)
        started = time.perf_counter()
        push = bridge.sync(pull=False)
        push_s = time.perf_counter() - started
        if push.sent != n or push.failures:
            raise RuntimeError(f"{mode}: sent {push.sent} of {n}, failures {push.failures}")
        env.clock.advance(30)
        started = time.perf_counter()
        pull = bridge.sync(push=False)
        pull_s = time.perf_counter() - started
        delivered = env.org.count(MSG, "Delivery_Status__c = 'Delivered'")
        if delivered != n:
            raise RuntimeError(f"{mode}: {delivered} of {n} records delivered after the pull")
        return {"push": dict(push.calls), "pull": dict(pull.calls), "push_s": push_s, "pull_s": pull_s}


def _naive(sample: int) -> dict[str, float]:
    """Seconds per record of the naive way: claim, write back, then upsert the report, one call each."""
    from simple_salesforce.api import Salesforce, SFType

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-sf-naive-") as tmp:
        env = _Org(stack, Path(tmp))
        _queue(env.org, sample)
        session = requests.Session()
        session.verify, session.trust_env = str(env.ca), False
        stack.callback(session.close)
        sf = Salesforce(instance_url=env.org.url, session_id=env.org.issue_token(), session=session)
        due = list(sf.query_all_iter(f"SELECT Id, To__c FROM {MSG} WHERE Status__c = 'Queued'"))
        messages = sf.SMS_Message__c
        assert isinstance(messages, SFType)  # not a bulk handler: the REST one-record calls
        started = time.perf_counter()
        for i, rec in enumerate(due):
            messages.update(rec["Id"], {"Status__c": "Sending", "Send_Key__c": f"k{i}", "Attempts__c": 1})
        for i, rec in enumerate(due):
            messages.update(rec["Id"], {"Status__c": "Sent", "Provider_Message_Id__c": f"m{i}"})
        push_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(len(due)):
            messages.upsert(f"Provider_Message_Id__c/m{i}", {"Delivery_Status__c": "Delivered"})
        pull_s = time.perf_counter() - started
        return {"push_per_record": push_s / sample, "pull_per_record": pull_s / sample}


CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from bench.memory import peak_rss_mb
    from datetime import UTC, datetime, timedelta
    from smsrelay import ManualClock
    from smsrelay_salesforce.config import config_from_mapping
    from smsrelay_salesforce.sync import Bridge

    mapping = json.loads(sys.argv[1])
    clock = ManualClock(datetime.fromisoformat(sys.argv[2]))
    config = config_from_mapping(mapping, env={"SF_TOKEN": os.environ["SF_TOKEN"]})
    started = time.perf_counter()
    with Bridge(config, clock=clock, bulk_poll=0.01) as bridge:
        pull = bridge.sync(push=False)
    took = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(json.dumps({"updated": pull.deliveries_updated, "events": pull.events, "calls": pull.calls,
                      "peak_mb": peak_mb, "seconds": took}))
    """
)


def _pull_memory(n: int) -> dict[str, Any]:
    """Push n records in this process, then pull their n delivery reports in a child; its peak RSS."""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-sf-rss-") as tmp:
        env = _Org(stack, Path(tmp))
        _queue(env.org, n)
        bridge = env.bridge(stack)
        push = bridge.sync(pull=False)
        if push.sent != n:
            raise RuntimeError(f"pull memory: sent {push.sent} of {n}")
        bridge.close()
        mapping = _mapping(env.org, env.ca, env.tmp)
        later = env.clock.now() + timedelta(seconds=30)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(mapping), later.isoformat()],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
            env={**_environ(), "SF_TOKEN": env.org.issue_token()},
        )
        if out.returncode != 0:
            raise RuntimeError(f"the pulling child failed: {out.stderr[-2000:]}")
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        # A message may be written once per window it has events in (sent, then delivered), so
        # the check is the org's end state, not the count of writes.
        delivered = env.org.count(MSG, "Delivery_Status__c = 'Delivered'")
        if delivered != n:
            raise RuntimeError(f"pull memory: {delivered} of {n} records delivered after the pull")
        return data


def _follow(n: int) -> dict[str, float]:
    """Push n delivery webhooks while the follower runs; latency percentiles and calls per 1,000 events."""
    import socket
    import threading

    import uvicorn
    from smsrelay_salesforce.config import config_from_mapping
    from smsrelay_salesforce.follow import Follower
    from smsrelay_salesforce.sync import Bridge
    from smsrelay_salesforce.testing import OrgEmulator, make_tls

    from smsrelay.config import ProviderSettings
    from smsrelay.inbox import open_inbox
    from smsrelay.model import Delivery, Status, event_to_dict
    from smsrelay.receiver import create_app, route_for

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-sf-follow-") as tmp_name:
        tmp = Path(tmp_name)
        tls = make_tls(tmp)
        org = stack.enter_context(OrgEmulator(ssl_context=tls.ssl_context))  # the wall clock: latency is real
        _queue(org, n)
        data = _mapping(org, tls.ca_path, tmp)
        # Reports come only from the pushes: the sandbox itself reports nothing for a day.
        data["sms"].update(delivered_after=86_400.0, reply_after=86_400.0, inbox=str(tmp / "inbox.db"))
        data["limits"] = {"follow_wait": 0.5}
        bridge = stack.enter_context(Bridge(config_from_mapping(data, env={"SF_TOKEN": org.issue_token()})))
        if bridge.sync(pull=False).sent != n:
            raise RuntimeError("follow: not every record was sent")
        follower = Follower(bridge, idle=0.05)
        while follower.batch().events:  # the sandbox's own polled "sent" reports
            pass
        sent = {r["Provider_Message_Id__c"]: r["Phone_E164__c"] for r in org.records(MSG)}
        route = route_for(ProviderSettings("sandbox", webhook_secret=FOLLOW_TOKEN))
        app = create_app([route], open_inbox(tmp / "inbox.db"))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        stack.callback(setattr, server, "should_exit", True)
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/sandbox"
        stop = threading.Event()
        reached: dict[str, float] = {}
        updated: dict[str, float] = {}

        def push() -> None:  # the provider's side: one webhook per report, back to back
            session = requests.Session()
            for mid, phone in sent.items():
                event = Delivery(f"dlr-{mid}", "sandbox", phone, datetime.now(UTC), mid, status=Status.DELIVERED)
                body = json.dumps({"events": [event_to_dict(event)]})
                resp = session.post(url, data=body, headers={"X-Smsrelay-Token": FOLLOW_TOKEN}, timeout=30)
                resp.raise_for_status()
                reached[mid] = time.perf_counter()

        def watch() -> None:  # Salesforce's side: when each record shows Delivered
            deadline = time.perf_counter() + 300
            while len(updated) < n and time.perf_counter() < deadline:
                now = time.perf_counter()
                with org.lock:  # the table itself: a SOQL query per tick would load the machine
                    done = [r["Provider_Message_Id__c"] for r in org.tables[MSG].values()
                            if r.get("Delivery_Status__c") == "Delivered"]  # fmt: skip
                for mid in done:
                    updated.setdefault(mid, now)
                time.sleep(0.01)
            stop.set()

        calls_before = bridge.org.calls
        threads = [threading.Thread(target=push, daemon=True), threading.Thread(target=watch, daemon=True)]
        for t in threads:
            t.start()
        follower.run(stop)  # the bridge's state file belongs to this thread
        for t in threads:
            t.join(60)
        calls = bridge.org.calls - calls_before
        if len(updated) < n:
            raise RuntimeError(f"follow: {len(updated)} of {n} records updated")
        latencies = sorted(updated[m] - reached[m] for m in reached)
        return {
            "p50": latencies[len(latencies) // 2],
            "p95": latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)],
            "calls_per_1000": calls * 1000 / n,
            "calls": calls,
        }


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}}


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    started = time.perf_counter()
    floor = math.ceil(n / 200)
    figures: list[Figure] = []
    _sync("collections", 5)  # warm-up: imports, templates and first connections are not the sync's cost
    results = {mode: _sync(mode, n) for mode in ("collections", "bulk")}
    naive = _naive(NAIVE_SAMPLE_SMOKE if smoke else NAIVE_SAMPLE_FULL)
    col, blk = results["collections"], results["bulk"]
    for phase, calls in (("claim", col["push"]), ("write-back", col["push"]), ("deliveries", col["pull"])):
        c = calls.get(phase, 0)
        figures.append(
            Figure(
                BENCH,
                f"Collections {phase} calls, {n:,} records",
                c,
                "calls",
                f"≤ {floor + 10} (floor {floor})",
                c <= floor + 10,
                f"floor ⌈{n:,}/200⌉ = {floor}",
            )
        )
    if n > 2000:  # below the threshold the bulk run writes with Collections too
        for phase, calls in (("write-back", blk["push"]), ("deliveries", blk["pull"])):
            c = calls.get(phase, 0)
            figures.append(
                Figure(
                    BENCH,
                    f"Bulk 2.0 {phase} calls, {n:,} records",
                    c,
                    "calls",
                    "≤ 15 (a job's handful + 10)",
                    c <= 15,
                    "create, upload, close, poll, results",
                )
            )
    naive_push = naive["push_per_record"] * n
    naive_pull = naive["pull_per_record"] * n
    how = f"naive: one REST call per record per phase, {NAIVE_SAMPLE_SMOKE if smoke else NAIVE_SAMPLE_FULL} sampled"
    for mode, res in results.items():
        figures += [
            Figure(
                BENCH,
                f"{mode} push wall time, {n:,} records",
                res["push_s"],
                "s",
                detail="query, claim, send, write back",
            ),
            Figure(BENCH, f"{mode} pull wall time, {n:,} reports", res["pull_s"], "s"),
            Figure(BENCH, f"{mode} push speed-up vs naive", naive_push / res["push_s"], "x", detail=how),
            Figure(BENCH, f"{mode} pull speed-up vs naive", naive_pull / res["pull_s"], "x", detail=how),
        ]
    figures.append(Figure(BENCH, f"naive push wall time, {n:,} records (scaled)", naive_push, "s", detail=how))
    figures.append(
        Figure(
            BENCH,
            f"naive Salesforce calls, {n:,} records",
            3 * n + math.ceil(n / 2000),
            "calls",
            detail="claim + write-back + one upsert per report, plus the query pages",
        )
    )
    follow_n = FOLLOW_SMOKE if smoke else FOLLOW_FULL
    fol = _follow(follow_n)
    how = f"{follow_n:,} delivery webhooks, one event each, sent back to back; follow_wait 0.5 s"
    figures += [
        Figure(BENCH, "sync --follow p50 webhook → record", fol["p50"], "s", detail=how),
        Figure(BENCH, "sync --follow p95 webhook → record", fol["p95"], "s", "≤ 5 s", fol["p95"] <= 5, how),
        Figure(BENCH, "sync --follow Salesforce calls per 1,000 events", fol["calls_per_1000"], "calls",
               detail=f"{fol['calls']} calls for {follow_n:,} events"),
    ]  # fmt: skip
    big_n = PULL_SMOKE if smoke else PULL_FULL
    big = _pull_memory(big_n)
    figures += [
        Figure(BENCH, f"bridge peak RSS pulling {big_n:,} events", big["peak_mb"], "MB", "< 150 MB",
               big["peak_mb"] < 150, f"child process, VmHWM; calls {big['calls']}"),
        Figure(BENCH, f"bridge pull throughput, {big_n:,} events", big_n / big["seconds"], "events/s"),
    ]  # fmt: skip
    if not smoke:
        base = _pull_memory(PULL_BASE)
        growth = big["peak_mb"] - base["peak_mb"]
        figures.append(
            Figure(BENCH, f"bridge RSS growth {PULL_BASE:,} → {big_n:,} events", growth, "MB", "flat (< 15 MB)",
                   growth < 15, f"baseline {base['peak_mb']:.1f} MB")
        )  # fmt: skip
    figures.append(Figure(BENCH, "bench wall time", time.perf_counter() - started, "s"))
    return figures
