"""The ``smsrelay`` command line.

Exit codes: 0 every message accepted, 1 some sends failed, 2 bad input or config
(then nothing was sent).

    smsrelay send +61491570156 -m "Deploy {{ version }} done" --var version=1.4
    smsrelay send --to-file team.csv --template alert.txt --json
    smsrelay status sbx-1234
    smsrelay events --since <cursor>
    smsrelay preview -m "Hi 👋"
    smsrelay emulate kudosity-v2 --port 8080
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from smsrelay.client import Client
from smsrelay.errors import AmbiguousSend, AuthError, ConfigError, InvalidRequest, SmsRelayError
from smsrelay.model import Event, Message, Recipient, SendResult, Status, event_to_dict
from smsrelay.recipients import read_recipients_csv

if TYPE_CHECKING:
    from smsrelay.routing import RoutedSend

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# The flag a user types for each settings or message field an error can name.
FLAGS = {
    "sender": "--from",
    "send_at": "--send-at",
    "message": "--message",
    "base_url": "--base-url",
    "provider": "--provider",
    "since": "--since",
    "track_links": "--track-links",
}


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere unless forced."""

    def __init__(self, stream: TextIO, enabled: bool, label: str = "sending") -> None:
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidRequest(f"--var takes NAME=VALUE, got {pair!r}", field="--var")
        out[name.strip()] = value
    return out


def _client(args: argparse.Namespace) -> Client:
    overrides: dict[str, Any] = {}
    if getattr(args, "base_url", None):
        overrides["base_url"] = args.base_url
    return Client(args.provider, config_file=args.config, inbox=getattr(args, "inbox", None), **overrides)


def _message_text(args: argparse.Namespace) -> str:
    if args.message is not None and args.template:
        raise InvalidRequest("give either --message or --template, not both", field="--message")
    if args.template:
        try:
            return Path(args.template).read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"cannot read the template: {exc.strerror}", file=args.template) from None
    if args.message is None:
        raise InvalidRequest("no message: give --message TEXT or --template FILE", field="--message")
    return str(args.message)


def _print_result(result: SendResult, out: TextIO) -> None:
    for r in result.results:
        ident = r.message_id or "-"
        line = f"{r.to:<16} {r.status.value:<10} parts={r.parts} id={ident}"
        if r.in_doubt:  # the key is what `smsrelay reconcile` settles it by
            line += f" key={r.key}"
        if r.error:
            line += f"  error: {r.error}"
        out.write(line + "\n")
    accepted = len(result.accepted)
    note = " (dry run: nothing sent)" if result.dry_run else ""
    batch = f", batch {result.batch_id}" if result.batch_id else ""
    out.write(f"{accepted}/{len(result.results)} accepted{batch}{note}\n")


def _send_routed(args: argparse.Namespace, message: Message, recipients: list[Recipient | str]) -> int | None:
    """Send through a routing file given as ``--config`` (see docs/routing.md); None for a plain settings file."""
    from smsrelay.routing import Router, is_routing_file

    if not args.config or not is_routing_file(args.config):
        return None
    with Router.from_file(args.config, on_doubt="report") as router:
        routed = router.send(
            recipients,
            message,
            tag=args.tag,
            dry_run=args.dry_run,
            on_invalid="skip" if args.skip_invalid else "raise",
        )
    return _print_routed(routed, as_json=args.json)


def _print_routed(routed: RoutedSend, *, as_json: bool) -> int:
    """Each recipient with the account chosen, why, and its cost; then the total."""
    if as_json:
        json.dump(routed.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK if routed.all_accepted else EXIT_FAILED
    for item in routed.results:
        r = item.result
        line = f"{r.to:<16} {item.account or '-':<10} {r.status.value:<10} parts={r.parts} id={r.message_id or '-'}"
        if r.in_doubt:
            line += f" key={r.key}"
        if item.cost is not None:
            line += f" cost={item.cost:g}"
        line += f"  ({item.reason})"
        if r.error:
            line += f"  error: {r.error}"
        sys.stdout.write(line + "\n")
    accepted = sum(1 for i in routed.results if i.result.accepted)
    note = " (dry run: nothing sent)" if routed.dry_run else ""
    currency = f" {routed.currency}" if routed.currency else ""
    sys.stdout.write(
        f"{accepted}/{len(routed.results)} accepted, estimated cost {routed.total_cost:g}{currency}{note}\n"
    )
    return EXIT_OK if routed.all_accepted else EXIT_FAILED


def cmd_send(args: argparse.Namespace) -> int:
    body = _message_text(args)
    recipients: list[Recipient | str] = [*args.to, *args.to_flag]
    if args.to_file:
        recipients.extend(row.recipient for row in read_recipients_csv(args.to_file))
    if not recipients:
        raise InvalidRequest("no recipients: give numbers or --to-file", field="to")
    send_at = None
    if args.send_at:
        try:
            send_at = datetime.fromisoformat(args.send_at)
        except ValueError:
            raise InvalidRequest(
                f"--send-at must be an ISO 8601 time, got {args.send_at!r}", field="--send-at"
            ) from None
        if send_at.tzinfo is None:
            raise InvalidRequest("--send-at needs a time zone, e.g. 2026-05-01T09:00:00+10:00", field="--send-at")
        send_at = send_at.astimezone(UTC)
    message = Message(
        body=body,
        sender=args.sender,
        vars=_parse_vars(args.var),
        ref=args.key,
        send_at=send_at,
        track_links=args.track_links,
    )
    routed = _send_routed(args, message, recipients)
    if routed is not None:
        return routed
    with _client(args) as client:
        progress = Progress(sys.stderr, enabled=args.progress or (sys.stderr.isatty() and not args.json))
        result = client.send_many(
            message,
            recipients,
            dry_run=args.dry_run,
            on_invalid="skip" if args.skip_invalid else "raise",
            on_progress=progress,
        )
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_result(result, sys.stdout)
    return EXIT_OK if result.all_accepted else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reports = client.status(args.message_id)
    if args.json:
        json.dump({k: event_to_dict(v) for k, v in reports.items()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for mid in args.message_id:
            d = reports.get(mid)
            if d is None:
                sys.stdout.write(f"{mid}  no report yet\n")
                continue
            reason = f"  ({d.reason})" if d.reason else ""
            sys.stdout.write(
                f"{mid}  {d.status.value:<10} {d.raw_status or ''} at {d.occurred_at.isoformat()}{reason}\n"
            )
    bad = [d for d in reports.values() if d.status.final and d.status is not Status.DELIVERED]
    return EXIT_FAILED if bad else EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"base_url": args.base_url} if getattr(args, "base_url", None) else {}
    with Client(args.provider, config_file=args.config, journal=args.journal or None, **overrides) as client:
        keys = list(dict.fromkeys(args.key))
        if not keys:
            journal = client.journal
            if journal is None:
                raise InvalidRequest(
                    "no keys: give KEY…, or --journal (or SMSRELAY_JOURNAL) to settle the keys it holds in flight",
                    field="key",
                )
            keys = journal.in_flight(client.provider.name)
        found = client.reconcile(keys) if keys else {}
    rows = []
    for key in keys:
        r = found.get(key)
        rows.append(
            {"key": key, "found": r is not None}
            | ({"to": r.to, "status": r.status.value, "message_id": r.message_id} if r is not None else {})
        )
    if args.json:
        json.dump({"results": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for row in rows:
            if row["found"]:
                sys.stdout.write(f"{row['key']}  accepted  {row['to']}  id={row['message_id']}\n")
            else:
                sys.stdout.write(
                    f"{row['key']}  not found: not accepted, if the send is older than the provider's lag\n"
                )
        sys.stdout.write(f"{len(found)}/{len(keys)} found\n")
    return EXIT_OK if len(found) == len(keys) else EXIT_FAILED


def describe_event(e: Event) -> str:
    """One human line for an event."""
    when = e.occurred_at.isoformat()
    if e.kind == "delivery":
        return f"{when} delivery {e.phone} {e.message_id} {e.status.value}"
    if e.kind == "reply":
        return f"{when} reply    {e.phone} {e.text!r}"
    if e.kind == "link_hit":
        return f"{when} link     {e.phone} {e.url or ''}"
    return f"{when} opt-out  {e.phone} ({e.source})"


def cmd_events(args: argparse.Namespace) -> int:
    cursor = args.since
    if args.cursor and args.since:
        raise InvalidRequest("give either --since or --cursor, not both", field="--cursor")
    with _client(args) as client:
        while True:
            try:
                page = client.events(since=cursor, limit=args.limit, cursor=args.cursor)
            except InvalidRequest as exc:
                if exc.field not in ("cursor", "since"):
                    raise
                # Providers call their position "cursor"; the user typed --since or --cursor.
                flag = "--cursor" if args.cursor else "--since"
                raise InvalidRequest(exc.message, field=flag, provider=exc.provider) from None
            for event in page:
                if args.json:
                    sys.stdout.write(json.dumps(event_to_dict(event), ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write(describe_event(event) + "\n")
            sys.stdout.flush()
            if args.cursor:  # printed: acknowledge, so the next run starts after these
                client.commit_events(args.cursor, page)
            cursor = page.cursor
            if page.more:
                continue
            if not args.follow:
                break
            time.sleep(args.interval)
    # The cursor goes to stderr so that stdout stays pure events (JSON lines).
    sys.stderr.write(f"cursor: {cursor or ''}\n")
    return EXIT_OK


def cmd_preview(args: argparse.Namespace) -> int:
    from smsrelay.routing import Router, is_routing_file

    body = _message_text(args)
    recipients: list[Recipient | str] = [*args.to, *args.to_flag] or ["+61491570156"]
    if args.to_file:
        recipients = [row.recipient for row in read_recipients_csv(args.to_file)]
    if args.config and is_routing_file(args.config):
        # Per recipient, the account its route would take, checked locally as send --dry-run does.
        with Router.from_file(args.config) as router:
            message = Message(body=body, sender=args.sender, vars=_parse_vars(args.var))
            routed = router.send(recipients, message, tag=args.tag, dry_run=True, on_invalid="skip")
        return _print_routed(routed, as_json=args.json)
    with _client(args) as client:
        p = client.preview(Message(body=body, sender=args.sender, vars=_parse_vars(args.var)), recipients)
    data = {
        "recipients": p.recipients,
        "messages": p.messages,
        "parts": p.parts,
        "encodings": dict(p.encodings),
        "cost": None if p.cost is None else {"amount": str(p.cost.amount), "currency": p.cost.currency},
        "sample": p.sample,
        "rejected": [{"to": r.to, "error": r.error} for r in p.rejected],
        "estimated_seconds": None if p.estimated_duration is None else p.estimated_duration.total_seconds(),
    }
    if args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        enc = ", ".join(f"{k} ×{v}" for k, v in p.encodings.items()) or "-"
        sys.stdout.write(f"messages: {p.messages} of {p.recipients} recipients\nencoding: {enc}\nparts:    {p.parts}\n")
        if p.cost is not None:
            sys.stdout.write(f"cost:     {p.cost.amount} {p.cost.currency or ''}\n")
        if p.estimated_duration is not None:
            sys.stdout.write(f"duration: about {p.estimated_duration} at the provider's rate limit\n")
        for r in p.rejected:
            sys.stdout.write(f"rejected: {r.to}: {r.error}\n")
        if p.sample is not None:
            sys.stdout.write(f"sample:   {p.sample}\n")
    return EXIT_OK if not p.rejected else EXIT_FAILED


def cmd_emulate(args: argparse.Namespace) -> int:
    from smsrelay.clock import ManualClock, ScaledClock
    from smsrelay.emulators import emulator_class
    from smsrelay.emulators.options import parse_duration, parse_number, parse_rate_limit

    try:
        cls = emulator_class(args.name)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0]), field="name") from None
    kw: dict[str, Any] = {"host": args.host, "port": args.port, "lag": args.lag}
    kw["latency"] = parse_duration(args.latency, "--latency")
    kw["jitter"] = parse_duration(args.jitter, "--jitter")
    if args.rate_limit is not None:  # unset: the emulator's default (SMSKit's documented limit, others none)
        kw["rate_limit"] = parse_rate_limit(args.rate_limit, cls.documented_rate_limit)
    if args.seed is not None:
        kw["seed"] = parse_number(args.seed, "--seed", int)
    if args.clock_epoch is not None and args.clock_speed is None:
        raise ConfigError("--clock-epoch needs --clock-speed", field="--clock-epoch")
    if args.clock_speed is not None:
        if args.manual_clock:
            raise ConfigError("--clock-speed and --manual-clock exclude each other", field="--clock-speed")
        epoch = None if args.clock_epoch is None else parse_number(args.clock_epoch, "--clock-epoch", float)
        try:
            kw["clock"] = ScaledClock(parse_number(args.clock_speed, "--clock-speed", float), epoch=epoch)
        except ValueError as exc:
            raise ConfigError(str(exc), field="--clock-speed") from None
    if args.manual_clock:
        # Start at the real time: clients poll windows around their own clock (Kudosity V2: 72 h).
        kw["clock"] = ManualClock(datetime.now(UTC))
    if args.any_key:
        kw["accept_any_key"] = True
    try:
        emulator = cls(**kw).start()
    except OSError as exc:  # the port is taken, or the address is not ours
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", field="--port") from None
    sys.stdout.write(f"{emulator.name} emulator listening on {emulator.url} (control API: {emulator.url}/_emulator/)\n")
    limit = emulator.rate_limit_in_force
    sys.stdout.write(
        f"latency {emulator.latency * 1000:g} ms ± {emulator.jitter * 1000:g} ms; "
        f"rate limit: {limit.describe() if limit else 'none'}; clock: {type(emulator.clock).__name__}\n"
    )
    if args.rate_limit == "documented" and limit is None:
        sys.stderr.write(f"note: {emulator.name} documents no rate limit, so none is enforced\n")
    sys.stdout.flush()
    emulator.serve_forever()
    return EXIT_OK


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    import threading

    from smsrelay.config import load_settings
    from smsrelay.feed import default_inbox_url
    from smsrelay.inbox import open_inbox
    from smsrelay.receiver import create_app, route_for, serve
    from smsrelay.routing import is_routing_file, load_routing

    routes = []
    for spec in args.route:
        name, sep, config = spec.partition("=")
        if not sep or not name or not config:
            raise InvalidRequest(f"--route takes NAME=CONFIG_FILE, got {spec!r}", field="--route")
        routes.append(route_for(load_settings(config_file=config), name))
    inbox_url = args.inbox
    if not routes and args.config and is_routing_file(args.config):
        # A routing file: one route per account, /webhooks/<account>, each with its own secret.
        routing = load_routing(args.config)
        routes = [route_for(settings, name) for name, settings in routing.accounts.items()]
        inbox_url = inbox_url or routing.inbox
    if not routes:
        overrides = {"base_url": args.base_url} if args.base_url else {}
        settings = load_settings(args.provider, config_file=args.config, **overrides)
        routes.append(route_for(settings, args.name))
    for route in routes:
        secrets = route.provider.settings
        if not (secrets.webhook_secret or secrets.api_secret):
            logging.getLogger("smsrelay.receiver").warning(
                "route %s has no webhook_secret: every push to it will be refused", route.name
            )
    if len({r.name for r in routes}) != len(routes):
        raise InvalidRequest("two routes have the same name", field="--route")
    inbox = open_inbox(inbox_url or default_inbox_url())
    stop = threading.Event()

    def compact() -> None:
        while not stop.wait(args.compact_interval):
            try:
                inbox.compact()
            except Exception as exc:  # keep serving; the next round retries
                logging.getLogger("smsrelay.receiver").warning("compaction failed: %s", exc)

    if args.compact_interval > 0:
        threading.Thread(target=compact, name="smsrelay-compact", daemon=True).start()
    app = create_app(routes, inbox, max_body=args.max_body)
    logging.getLogger("smsrelay.receiver").setLevel(logging.WARNING if args.quiet else logging.INFO)
    paths = ", ".join(f"/webhooks/{r.name}" for r in routes)
    sys.stdout.write(f"receiver on http://{args.host}:{args.port} routes: {paths}; inbox: {inbox!r}\n")
    sys.stdout.flush()
    try:
        serve(app, host=args.host, port=args.port, forwarded_allow_ips=args.forwarded_allow_ips)
    finally:
        stop.set()
        inbox.close()
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    with _client(args) as client:
        provider = client.provider
        if args.action == "register":
            hook = provider.register_webhook(args.url, events=args.events or None, name=args.name)
            sys.stdout.write(f"registered webhook {hook.id} for {', '.join(hook.events) or 'all events'}\n")
        elif args.action == "list":
            for hook in provider.list_webhooks():
                from smsrelay.redaction import redact

                sys.stdout.write(f"{hook.id}  {redact(hook.url)}  {', '.join(hook.events)}\n")
        else:
            provider.delete_webhook(args.webhook_id)
            sys.stdout.write(f"deleted webhook {args.webhook_id}\n")
    return EXIT_OK


def _describe_device(dev: Any) -> str:
    """One human line for a sending phone: id, name, state and its SIMs."""
    sims = ", ".join(
        f"SIM {s.get('simSlot')} {s.get('carrierName') or '?'}{'' if s.get('isEnabled', True) else ' (disabled)'}"
        for s in dev.get("sims") or []
    )
    state = dev.get("status") or "?"
    if dev.get("isEnabled") is False:
        state += ", disabled"
    battery = f" battery {dev['batteryLevel']}%" if dev.get("batteryLevel") is not None else ""
    return f"{dev.get('deviceId')}  {dev.get('name') or ''}  [{state}]{battery}  {sims}".rstrip()


def cmd_account(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.command == "balance":
            bal = client.balance()
            sys.stdout.write(f"{bal.amount} {bal.currency or ''}\n")
        elif args.command == "cancel":
            client.cancel(args.message_id)
            sys.stdout.write(f"cancelled {args.message_id}\n")
        elif args.command == "check":
            client.check()
            sys.stdout.write(f"{client.provider.name}: credentials accepted\n")
        elif args.command == "devices":
            devices = client.devices()
            if args.json:
                json.dump([dict(d) for d in devices], sys.stdout, ensure_ascii=False, indent=2)
                sys.stdout.write("\n")
            else:
                sys.stdout.writelines(_describe_device(dev) + "\n" for dev in devices)
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from smsrelay.providers.sandbox import SandboxProvider

    with Client("sandbox", config_file=args.config) as client:
        provider = client.provider
        assert isinstance(provider, SandboxProvider)
        reply = provider.inject_reply(args.phone, args.text)
    sys.stdout.write(f"reply {reply.message_id} from {reply.phone}: {reply.text!r}\n")
    return EXIT_OK


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    # No prefix matching anywhere: "--to" must never silently mean "--to-file".
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--provider", help="sandbox, kudosity, smskit, mesms or kaleyra (default: $SMSRELAY_PROVIDER)")
    common.add_argument("--config", help="a YAML settings file (default: $SMSRELAY_CONFIG)")
    common.add_argument("--base-url", help="the provider's API URL (e.g. an emulator)")
    common.add_argument("-v", "--verbose", action="count", default=0)
    # --json only where a command has machine-readable output.
    output = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    output.add_argument("--json", action="store_true", help="machine-readable output")

    verbose = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    verbose.add_argument("-v", "--verbose", action="count", default=0)

    parser = argparse.ArgumentParser(
        prog="smsrelay", description="Send SMS and read delivery reports.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, allow_abbrev=False)

    p = add("send", parents=[common, output], help="send a message to one or many numbers")
    p.add_argument("to", nargs="*", help="phone numbers (E.164, or national with default_region set)")
    p.add_argument("--to", dest="to_flag", action="append", default=[], metavar="NUMBER", help="a phone number")
    p.add_argument("-m", "--message", help="the message: a jinja2 template")
    p.add_argument("--template", help="read the message template from a file")
    p.add_argument("--to-file", help="CSV of recipients: a 'to' column, other columns are variables")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a template variable")
    p.add_argument("--from", dest="sender", help="the sender id or number")
    p.add_argument("--key", help="idempotency key: the same key never sends twice")
    p.add_argument("--send-at", help="schedule, ISO 8601 with a zone")
    p.add_argument("--track-links", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="validate and count parts; send nothing")
    p.add_argument("--tag", help="the message's tag, for the routes of a routing file (--config) that match on it")
    p.add_argument("--skip-invalid", action="store_true", help="send to the valid recipients when some fail checks")
    p.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    p.set_defaults(func=cmd_send)

    p = add("status", parents=[common, output], help="the delivery status of messages")
    p.add_argument("message_id", nargs="+")
    p.set_defaults(func=cmd_status)

    p = add("reconcile", parents=[common, output], help="settle messages in doubt by their idempotency keys")
    p.add_argument("key", nargs="*", help="keys in doubt (printed by send as key=…, and in --json)")
    p.add_argument(
        "--journal", help="the send journal (a path or URL; $SMSRELAY_JOURNAL): with no KEY, its keys in flight"
    )
    p.set_defaults(func=cmd_reconcile)

    p = add("events", parents=[common, output], help="delivery reports, replies, link hits and opt-outs")
    p.add_argument("--since", help="the cursor printed by the previous call")
    p.add_argument("--cursor", help="a durable reader name: resume where it left off, and acknowledge what is printed")
    p.add_argument("--inbox", help="the event inbox: a path, sqlite:///path or postgresql://… ($SMSRELAY_INBOX)")
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--follow", action="store_true", help="keep polling")
    p.add_argument("--interval", type=float, default=2.0)
    p.set_defaults(func=cmd_events)

    p = add("preview", parents=[common, output], help="encoding, parts and cost, without sending")
    p.add_argument("to", nargs="*")
    p.add_argument("--to", dest="to_flag", action="append", default=[], metavar="NUMBER", help="a phone number")
    p.add_argument("-m", "--message")
    p.add_argument("--template")
    p.add_argument("--to-file")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--from", dest="sender", help="the sender id or number")
    p.add_argument("--tag", help="the message's tag, for the routes of a routing file (--config) that match on it")
    p.set_defaults(func=cmd_preview)

    # Only the options an emulator acts on: it has no provider settings of its own.
    p = add("emulate", parents=[verbose], help="run a provider emulator on loopback")
    p.add_argument("name", help="kudosity-v2, kudosity-v1, smskit, mesms or kaleyra")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=0, help="the port to listen on (default: a free one)")
    p.add_argument("--lag", type=float, default=0.0, help="read-after-write lag in seconds")
    p.add_argument("--manual-clock", action="store_true", help="time moves only via POST /_emulator/clock/advance")
    p.add_argument(
        "--any-key", action="store_true", help="accept any well-formed API key, not only the documented test keys"
    )
    p.add_argument("--latency", default="0", help="wait before each API answer: 150ms, 0.15s or 0.15 (default 0)")
    p.add_argument("--jitter", default="0", help="± uniform spread around --latency, e.g. 30ms (default 0)")
    p.add_argument(
        "--rate-limit",
        metavar="LIMIT",
        help="documented, off, or e.g. 15/s, 100/h, 50000/5min; 429s as the provider sends them "
        "(default: smskit documented, the others off)",
    )
    p.add_argument("--clock-speed", metavar="X", help="simulated time runs X times faster than real time")
    p.add_argument(
        "--clock-epoch", metavar="UNIX_TIME", help="the Unix time the scaled clock starts at (share it with the client)"
    )
    p.add_argument("--seed", help="seed the latency jitter, for reproducible runs")
    p.set_defaults(func=cmd_emulate)

    p = add("webhooks", parents=[common], help="manage the provider's webhooks")
    wsub = p.add_subparsers(dest="action", required=True)
    wadd = functools.partial(wsub.add_parser, allow_abbrev=False)
    w = wadd("register", parents=[common], help="register a receiver URL")
    w.add_argument("url")
    w.add_argument("--events", nargs="*")
    w.add_argument("--name")
    w.set_defaults(func=cmd_webhooks)
    w = wadd(
        "serve",
        parents=[common],
        help="run the webhook receiver (needs smsrelay[server]); with a routing file as --config, a route per account",
    )
    w.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 behind a proxy)")
    w.add_argument("--port", type=int, default=8080)
    w.add_argument("--inbox", help="where events are stored: a path, sqlite:///path or postgresql://…")
    w.add_argument("--name", help="the route name of the provider given by --provider/--config (default: its name)")
    w.add_argument(
        "--route", action="append", default=[], metavar="NAME=CONFIG", help="serve /webhooks/NAME with this config"
    )
    w.add_argument("--max-body", type=int, default=1024 * 1024, help="refuse larger bodies with 413 (bytes)")
    w.add_argument("--forwarded-allow-ips", help="trust X-Forwarded-For from these proxy addresses")
    w.add_argument("--compact-interval", type=float, default=3600.0, help="seconds between compactions (0: never)")
    w.add_argument("--quiet", action="store_true", help="log only problems, not each request")
    w.set_defaults(func=cmd_webhooks_serve)
    w = wadd("list", parents=[common], help="list registered webhooks")
    w.set_defaults(func=cmd_webhooks)
    w = wadd("delete", parents=[common], help="delete a webhook")
    w.add_argument("webhook_id")
    w.set_defaults(func=cmd_webhooks)

    for name, what in (
        ("balance", "the account's credit"),
        ("check", "test the credentials"),
        ("devices", "the account's sending devices (SMSKit)"),
    ):
        p = add(name, parents=[common, output] if name == "devices" else [common], help=what)
        p.set_defaults(func=cmd_account)
    p = add("cancel", parents=[common], help="cancel a scheduled message")
    p.add_argument("message_id")
    p.set_defaults(func=cmd_account)

    p = add("sandbox-reply", parents=[verbose], help="simulate an inbound SMS in the sandbox")
    p.add_argument("--config", help="a YAML settings file (default: $SMSRELAY_CONFIG)")
    p.add_argument("phone")
    p.add_argument("text")
    p.set_defaults(func=cmd_sandbox)
    return parser


def describe_error(exc: SmsRelayError) -> str:
    """The error in the CLI's words: a field the user set by a flag is named by that flag.

    >>> describe_error(ConfigError("kudosity needs a sender, and none was given", field="sender"))
    '--from: kudosity needs a sender, and none was given'
    """
    field = getattr(exc, "field", None)
    flag = field if field and field.startswith("--") else FLAGS.get(field or "")
    # An error located in a config file or the environment already names what to fix there.
    if flag is None or getattr(exc, "file", None):
        return str(exc)
    detail = exc.detail if isinstance(exc, ConfigError) else str(exc)
    return detail if flag in detail else f"{flag}: {detail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    >>> main(["preview", "-m", "Hi", "--json"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, InvalidRequest, AuthError) as exc:
        sys.stderr.write(f"error: {describe_error(exc)}\n")
        return EXIT_BAD_INPUT
    except SmsRelayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        if isinstance(exc, AmbiguousSend) and exc.result is not None:
            _print_result(exc.result, sys.stdout)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
