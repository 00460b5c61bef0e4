"""``make demo``, push part: provider emulators push webhooks to a running receiver.

It starts ``smsrelay webhooks serve`` as its own process, with a Kudosity V2 route
(URL token) and an SMSKit route (signed pushes), and the two emulators on loopback.
It registers the receiver with both, sends a few messages to the magic numbers, and
prints each event as it arrives through the durable feed. Then it shows a forged
push refused and a redelivery stored once. Everything runs offline.
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from smsrelay.cli import describe_event
from smsrelay.client import Client
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.smskit import SmsKitEmulator
from smsrelay.feed import Feed
from smsrelay.inbox import open_inbox

KUDOSITY_KEY = "demo-kudosity-key-0123"
KUDOSITY_TOKEN = "demo-kudosity-url-token-0123456789"
SMSKIT_KEY = "sk_test_key"
SMSKIT_SECRET = "demo-smskit-signing-secret-0123"
# Magic numbers (as the sandbox's): YES reply, STOP + opt-out, failed, delivered.
NUMBERS = ["+61491570004", "+61491570007", "+61491570001", "+61491570156"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_receiver(workdir: Path, kudosity_url: str, smskit_url: str, port: int) -> subprocess.Popen[bytes]:
    (workdir / "kudosity.yaml").write_text(
        f"provider: kudosity\napi: v2\napi_key: {KUDOSITY_KEY}\nbase_url: {kudosity_url}\n"
        f"webhook_secret: {KUDOSITY_TOKEN}\n"
    )
    (workdir / "smskit.yaml").write_text(
        f"provider: smskit\napi_key: {SMSKIT_KEY}\nbase_url: {smskit_url}\nwebhook_secret: {SMSKIT_SECRET}\n"
    )
    cmd = [sys.executable, "-m", "smsrelay", "webhooks", "serve", "--port", str(port), "--quiet"]
    cmd += ["--route", f"kudosity={workdir / 'kudosity.yaml'}", "--route", f"smskit={workdir / 'smskit.yaml'}"]
    cmd += ["--inbox", str(workdir / "inbox.db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(workdir / "receiver.log").open("wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the receiver exited:\n{(workdir / 'receiver.log').read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the receiver did not start")


def run(workdir: Path, timeout: float) -> int:
    out = sys.stdout
    kudosity_emu = KudosityV2Emulator(
        api_keys=(KUDOSITY_KEY,), sent_after=0.3, delivered_after=0.8, reply_after=1.2
    ).start()
    smskit_emu = SmsKitEmulator(
        api_keys=(SMSKIT_KEY,), assigned_after=0.1, sent_after=0.3, delivered_after=0.8, reply_after=1.2,
        late_sent_after=1.5,
    ).start()  # fmt: skip
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = _start_receiver(workdir, kudosity_emu.url, smskit_emu.url, port)
    out.write(f"receiver: smsrelay webhooks serve on {base} (routes /webhooks/kudosity, /webhooks/smskit)\n")
    kudosity = Client(
        "kudosity", env={}, api="v2", api_key=KUDOSITY_KEY, base_url=kudosity_emu.url, webhook_secret=KUDOSITY_TOKEN,
        sender="61481074185", rate_limit=100,
    )  # fmt: skip
    smskit = Client(
        "smskit", env={}, api_key=SMSKIT_KEY, base_url=smskit_emu.url, webhook_secret=SMSKIT_SECRET, rate_limit=100
    )
    inbox = open_inbox(workdir / "inbox.db")
    try:
        for client in (kudosity, smskit):
            hook = client.provider.register_webhook(f"{base}/webhooks/{client.provider.name}")
            out.write(f"registered with {client.provider.name}: webhook {hook.id} for {', '.join(hook.events)}\n")
        kudosity.send(NUMBERS, "Kudosity demo: reply YES to confirm")
        smskit.send(NUMBERS, "SMSKit demo: reply YES to confirm")
        out.write(f"sent {len(NUMBERS)} messages through each provider; events as they arrive:\n\n")
        out.flush()

        feed = Feed(kudosity.provider, inbox, name="demo", poll=False)
        started = time.monotonic()
        last_event = started
        counts: collections.Counter[str] = collections.Counter()
        while time.monotonic() - started < timeout:
            page = feed.read()
            for event in page:
                counts[f"{event.provider} {event.kind}"] += 1
                out.write(f"  +{time.monotonic() - started:4.1f}s  {event.provider:<8} {describe_event(event)}\n")
                last_event = time.monotonic()
            out.flush()
            if counts and time.monotonic() - last_event > 2.5:
                break
            time.sleep(0.1)
        feed.commit()

        out.write("\nrobustness:\n")
        forged = requests.post(f"{base}/webhooks/kudosity", json={"event_type": "SMS_STATUS"}, timeout=10)
        out.write(f"  a forged push without the URL token: HTTP {forged.status_code}\n")
        first = kudosity_emu.pushes[0]
        again = requests.post(first.url, data=first.body, headers=first.headers, timeout=10)
        out.write(f"  a redelivery of a real push: HTTP {again.status_code} {json.dumps(again.json())}\n")
        superseded = len(inbox.read("demo-audit", limit=10_000, include_superseded=True)) - len(
            inbox.read("demo-audit", limit=10_000)
        )
        out.write(f"  late 'sent' reports after 'delivered', kept out of the feed: {superseded}\n")
        out.write("\nsummary: " + ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) + "\n")
        out.write(f"inbox: {inbox.count()} events stored once each in {workdir / 'inbox.db'}\n")
        ok = counts["kudosity delivery"] > 0 and counts["smskit delivery"] > 0 and forged.status_code == 401
        return 0 if ok else 1
    finally:
        inbox.close()
        kudosity.close()
        smskit.close()
        receiver.terminate()
        receiver.wait(10)
        kudosity_emu.stop()
        smskit_emu.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the push demo.

    >>> main(["--timeout", "20"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(prog="python -m smsrelay.receiver_demo", description=__doc__)
    parser.add_argument("--timeout", type=float, default=20.0, help="stop waiting for events after this many seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smsrelay-push-demo-") as tmp:
        return run(Path(tmp), args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
