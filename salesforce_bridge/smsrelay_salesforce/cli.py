"""``smsrelay-salesforce``: check, sync, backfill, runs, emulate-org.

Exit codes: 0 done; 1 some records or events failed (the summary says which);
2 bad configuration; 3 Salesforce or the SMS provider refused to sign in;
4 another sync holds the state file.

>>> main(["check", "--config", "bridge.yaml"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from smsrelay import AuthError, ConfigError, SmsRelayError, redact

__all__ = ["JsonFormatter", "main", "parse_interval"]

log = logging.getLogger("smsrelay.salesforce.cli")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, every message through the redaction function."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def parse_interval(text: str) -> float:
    """``60s``, ``5m``, ``1h`` or a number of seconds.

    >>> parse_interval("5m")
    300.0
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interval such as 60s, 5m or 1h")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError("the interval must be more than zero")
    return value


def _since(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date such as 2026-01-31 or 2026-01-31T08:00:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smsrelay-salesforce",
        description="Send SMS that Salesforce records ask for, and write delivery reports, "
        "replies, link hits and opt-outs back.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=os.environ.get("SMSRELAY_SALESFORCE_CONFIG", "bridge.yaml"),
        help="bridge.yaml (default: $SMSRELAY_SALESFORCE_CONFIG or ./bridge.yaml)",
    )
    common.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines on stderr")
    common.add_argument("-v", "--verbose", action="count", default=0)
    common.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", parents=[common], help="validate the config, sign in, and check the mapped fields")
    s = sub.add_parser("sync", parents=[common], help="send what is due and write events back")
    when = s.add_mutually_exclusive_group(required=True)
    when.add_argument("--once", action="store_true", help="one cycle, then exit")
    when.add_argument("--every", type=parse_interval, metavar="INTERVAL", help="a cycle every INTERVAL (60s, 5m)")
    when.add_argument(
        "--follow",
        action="store_true",
        help="run until stopped, writing events from the receiver's inbox within seconds (sends nothing)",
    )
    s.add_argument(
        "--cursor",
        default=None,
        metavar="NAME",
        help="--follow: the inbox cursor to read through (default: smsrelay-salesforce)",
    )
    s.add_argument("--dry-run", action="store_true", help="show what would be sent and written; change nothing")
    part = s.add_mutually_exclusive_group()
    part.add_argument("--push-only", action="store_true", help="only send; do not read events")
    part.add_argument("--pull-only", action="store_true", help="only write events back; send nothing")
    s.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    b = sub.add_parser("backfill", parents=[common], help="re-read delivery statuses from the provider")
    b.add_argument("--since", type=_since, required=True, help="messages sent since this date (UTC)")
    b.add_argument("--dry-run", action="store_true")
    sub.add_parser("runs", parents=[common], help="the last runs from the state file")
    # Listed for --help; main() hands everything after it to the emulator's own parser.
    sub.add_parser("emulate-org", help="run the offline Salesforce org emulator (see emulate-org --help)")
    return p


def _logging(fmt: str, verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.getLogger("smsrelay").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


class _Progress:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, what: str, done: int, total: int) -> None:
        text = f"{what}: {done}/{total}" if total else f"{what}: {done}"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def _print_summary(summary: Any, as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), default=str))
    else:
        print(title)
        print(summary.table())
        print(summary.line())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulate-org"]:
        try:
            # By name: the emulator is test support, outside the product's import path.
            emulate_main = importlib.import_module("smsrelay_salesforce.testing").main
        except ImportError as exc:
            print(
                f"error: the org emulator cannot start: {exc} (pip install 'smsrelay-salesforce[emulator]')",
                file=sys.stderr,
            )
            return 2
        return int(emulate_main(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    _logging(args.log_format, args.verbose)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4 if type(exc).__name__ == "StateLocked" else 2
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except SmsRelayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from smsrelay_salesforce.config import load_config
    from smsrelay_salesforce.sync import Bridge

    config = load_config(args.config)
    with Bridge(config) as bridge:
        if args.command == "check":
            problems = bridge.check()
            if args.json:
                print(json.dumps({"ok": not problems, "problems": problems}))
            elif problems:
                print("the org does not match bridge.yaml:")
                for p in problems:
                    print(f"  - {p}")
            else:
                print(
                    f"ok: signed in to {bridge.org.instance_url}; every mapped field exists with a compatible type; "
                    f"{bridge.client.provider.name} accepted the credentials"
                )
            return 1 if problems else 0
        if args.command == "runs":
            for run in bridge.state.runs():
                s = run["summary"] or {}
                print(
                    f"{run['id']:>5}  {run['started']:%Y-%m-%d %H:%M:%S}  {run['kind']:<18} "
                    f"sent {s.get('sent', 0)}, updated {s.get('updated', 0)}, "
                    f"calls {s.get('total_calls', 0)}" + (f", paused: {s['paused']}" if s.get("paused") else "")
                )
            return 0
        if args.command == "backfill":
            summary = bridge.backfill(args.since, dry_run=args.dry_run)
            _print_summary(summary, args.json, f"backfill since {args.since.isoformat()}")
            return 1 if summary.failures else 0
        if args.follow:
            return _follow(bridge, args)
        progress = None if args.no_progress or not sys.stderr.isatty() else _Progress(sys.stderr)
        while True:
            started = time.monotonic()
            try:
                summary = bridge.sync(
                    dry_run=args.dry_run, push=not args.pull_only, pull=not args.push_only, progress=progress
                )
            except SmsRelayError as exc:
                if args.once:
                    raise
                log.error("sync failed: %s; trying again next cycle", exc)
                summary = None  # type: ignore[assignment]
            finally:
                if progress:
                    progress.end()
            if summary is not None:
                title = f"sync at {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
                _print_summary(summary, args.json, title)
                sys.stdout.flush()
            if args.once:
                return 1 if summary is not None and summary.failures else 0
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))


def _follow(bridge: Any, args: argparse.Namespace) -> int:
    """``sync --follow``: batches until SIGTERM or Ctrl-C, each one's summary line on stdout."""
    import signal
    import threading

    from smsrelay_salesforce.follow import DEFAULT_CURSOR, Follower

    stop = threading.Event()

    def on_batch(summary: Any) -> None:
        print(json.dumps(summary.to_dict(), default=str) if args.json else summary.line(), flush=True)

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        total = Follower(bridge, cursor=args.cursor or DEFAULT_CURSOR, on_batch=on_batch).run(stop)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
