"""``make demo``, core part: a templated campaign through the embedded sandbox.

It sends to 1,000 generated recipients with a progress bar, waits for the
simulated delivery reports, and prints a summary by status and the replies.
The sandbox state goes to a fresh temporary directory unless ``--path`` is given.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from smsrelay.cli import Progress, describe_event
from smsrelay.client import Client
from smsrelay.model import Event, Message, Recipient, Reply, Status

NAMES = ("Ann", "Bo", "Chen", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun")


def campaign(count: int) -> list[Recipient]:
    """``count`` recipients in the sandbox's number range, with their own variables.

    The last four digits pick the sandbox outcome, so 0001–0009 show every path.
    """
    return [
        Recipient(f"+6149157{i:04d}", vars={"name": NAMES[i % len(NAMES)], "code": f"SR{i:04d}"}) for i in range(count)
    ]


def run(count: int, path: Path, timeout: float) -> int:
    out = sys.stdout
    client = Client("sandbox", path=str(path), sent_after=0.2, delivered_after=1.0, reply_after=0.5, env={})
    message = Message(
        body="Hi {{ name }}, your smsrelay demo code is {{ code }}. Reply YES to confirm.",
        sender="smsrelay",
        ref="make-demo",
    )
    out.write(f"== smsrelay demo: a templated campaign to {count} recipients through the sandbox ({path})\n")
    preview = client.preview(message, campaign(1))
    out.write(f"   sample: {preview.sample!r} ({preview.parts} part, {', '.join(preview.encodings)})\n")
    started = time.monotonic()
    result = client.send_many(message, campaign(count), on_progress=Progress(out, enabled=True))
    out.write(f"   {len(result.accepted)} accepted in {time.monotonic() - started:.2f}s\n")

    out.write("== waiting for delivery reports\n")
    ids = result.message_ids
    final: dict[str, Status] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = client.status(ids)
        final = {mid: d.status for mid, d in reports.items()}
        # 0008 is the sandbox's "no report ever" number: it turns unknown at validity end.
        if all(s.final for s in final.values()) and len(final) == len(ids):
            break
        time.sleep(0.5)
    by_status = collections.Counter(s.value for s in final.values())
    out.write("\n   status      count\n   ----------  -----\n")
    for status in Status:
        if by_status.get(status.value):
            out.write(f"   {status.value:<10}  {by_status[status.value]:>5}\n")

    time.sleep(1.0)  # replies follow deliveries by reply_after seconds
    events: list[Event] = []
    cursor = None
    while True:
        page = client.events(since=cursor, limit=1000)
        events.extend(page.events)
        cursor = page.cursor
        if not page.more:
            break
    kinds = collections.Counter(e.kind for e in events)
    out.write(f"\n== events: {dict(kinds)}\n")
    for e in events:
        if e.kind != "delivery":
            out.write("   " + describe_event(e) + "\n")
    replies = [e for e in events if isinstance(e, Reply)]
    out.write(f"\n{len(result.accepted)} sent, {by_status.get('delivered', 0)} delivered, {len(replies)} replies\n")
    client.close()
    return 0 if result.accepted else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smsrelay.demo")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--path", type=Path, help="sandbox state file (default: a fresh temporary one)")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.path:
        return run(args.count, args.path, args.timeout)
    with tempfile.TemporaryDirectory(prefix="smsrelay-demo-") as tmp:
        return run(args.count, Path(tmp) / "sandbox.db", args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
