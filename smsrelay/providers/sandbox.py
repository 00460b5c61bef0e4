"""The embedded sandbox: a provider with no network and no credentials.

It keeps its outbox and event feed in a local SQLite file (``path`` option,
``SMSRELAY_SANDBOX_PATH``, default ``~/.local/state/smsrelay/sandbox.db``), so
``smsrelay events`` in one process sees what ``smsrelay send`` did in another.
Each message walks the lifecycle on the provider's clock: ``queued``, then
``sent`` after ``sent_after`` seconds, then its outcome after ``delivered_after``.

Magic numbers, by the last four digits of the recipient:

======  ==========================================================
digits  outcome
======  ==========================================================
0001    failed (``HARD_BOUNCE``)
0002    expired (``EXPIRED``)
0003    rejected by the carrier (``REJECTED``)
0004    delivered, then a reply ``YES``
0005    delivered, then a reply ``NO``
0006    delivered, then a link hit
0007    delivered, then a reply ``STOP`` and an opt-out
0008    sent, and no report ever comes: ``unknown`` at validity end
0009    delivered, then a late duplicate ``sent`` (tests the merge rule)
======  ==========================================================

Every other number is delivered.

The sandbox also accepts pushes, so the webhook receiver can be run and tested
without a provider: a JSON body ``{"events": [...]}`` of core events (as
:func:`~smsrelay.model.event_to_dict` writes them), authenticated by the
``webhook_secret`` in the header ``X-Smsrelay-Token`` or the query parameter ``token``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from smsrelay.errors import InvalidRequest, NotCancellable, NotFound, WebhookError
from smsrelay.model import (
    Capabilities,
    Delivery,
    Event,
    LinkHit,
    OptOut,
    PreparedSms,
    RecipientResult,
    Reply,
    Status,
    event_from_dict,
    event_id_for,
    event_to_dict,
)
from smsrelay.providers.base import Balance, BatchOutcome, EventPage, Provider, Quote
from smsrelay.webhooks import WebhookRequest, constant_time_equals, json_body

__all__ = ["MAGIC", "SandboxProvider", "default_path"]

# last four digits -> (final status, raw status, follow-up)
MAGIC: dict[str, tuple[Status, str, str | None]] = {
    "0001": (Status.FAILED, "HARD_BOUNCE", None),
    "0002": (Status.EXPIRED, "EXPIRED", None),
    "0003": (Status.REJECTED, "REJECTED", None),
    "0004": (Status.DELIVERED, "DELIVERED", "reply:YES"),
    "0005": (Status.DELIVERED, "DELIVERED", "reply:NO"),
    "0006": (Status.DELIVERED, "DELIVERED", "link"),
    "0007": (Status.DELIVERED, "DELIVERED", "stop"),
    "0008": (Status.UNKNOWN, "NO_DLR", None),
    "0009": (Status.DELIVERED, "DELIVERED", "late-sent"),
}
REASONS = {
    Status.FAILED: "handset refused the message",
    Status.EXPIRED: "validity period elapsed",
    Status.REJECTED: "carrier rejected the number",
    Status.UNKNOWN: "no delivery report within the validity period",
}
CREDIT_START = Decimal("1000000")
PRICE_PER_PART = Decimal("0.05")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    phone TEXT NOT NULL,
    sender TEXT,
    body TEXT NOT NULL,
    parts INTEGER NOT NULL,
    accepted_at REAL NOT NULL,
    send_at REAL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE NOT NULL,
    at REAL NOT NULL,
    message_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events (at, seq);
CREATE INDEX IF NOT EXISTS events_message ON events (message_id);
CREATE TABLE IF NOT EXISTS optouts (phone TEXT PRIMARY KEY, at REAL NOT NULL);
"""


def default_path() -> Path:
    """Where the sandbox keeps its state unless told otherwise."""
    env = os.environ.get("SMSRELAY_SANDBOX_PATH")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "smsrelay" / "sandbox.db"


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SandboxProvider(Provider):
    """The embedded default provider (see the module docs for its magic numbers)."""

    name: ClassVar[str] = "sandbox"
    capabilities = Capabilities(
        bulk_max=1000,
        concurrency=1,
        schedule=True,
        cancel=True,
        dry_run=True,
        status_poll=True,
        inbound_poll=True,
        event_poll=True,
        idempotency=True,
        lookup_by_ref=True,
        balance=True,
        link_tracking=True,
        max_chars=1600,
    )
    required: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, type]] = {
        "path": str,
        "sent_after": float,
        "delivered_after": float,
        "reply_after": float,
        "validity": float,
        "max_chars": int,
    }

    def __init__(self, settings: Any, *, clock: Any = None) -> None:
        super().__init__(settings, clock=clock)
        self.path = Path(settings.option("path") or default_path())
        self.sent_after = float(settings.option("sent_after", 0.2))
        self.delivered_after = float(settings.option("delivered_after", 1.0))
        self.reply_after = float(settings.option("reply_after", 1.5))
        self.validity = float(settings.option("validity", 5.0))
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SandboxProvider(path={str(self.path)!r})"

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- sending -------------------------------------------------------------
    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        now = self.clock.now()
        results: list[RecipientResult] = []
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for sms in batch:
                if dry_run:
                    results.append(RecipientResult(sms.to, Status.QUEUED, None, sms.parts, key=sms.key))
                    continue
                row = db.execute("SELECT id, status FROM messages WHERE key = ?", (sms.key,)).fetchone()
                if row is not None:  # idempotent: the same key returns the first send
                    results.append(RecipientResult(sms.to, Status(row[1]), row[0], sms.parts, key=sms.key))
                    continue
                if db.execute("SELECT 1 FROM optouts WHERE phone = ?", (sms.to,)).fetchone():
                    results.append(
                        RecipientResult(sms.to, Status.REJECTED, None, 0, error="recipient opted out", key=sms.key)
                    )
                    continue
                results.append(self._accept(db, sms, now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return BatchOutcome(batch_id=None, results=results)

    def _accept(self, db: sqlite3.Connection, sms: PreparedSms, now: datetime) -> RecipientResult:
        mid = "sbx-" + uuid.uuid4().hex[:20]
        send_at = sms.message.send_at
        start = max(now, send_at) if send_at else now
        status = Status.SCHEDULED if send_at and send_at > now else Status.QUEUED
        db.execute(
            "INSERT INTO messages (id, key, phone, sender, body, parts, accepted_at, send_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mid, sms.key, sms.to, sms.message.sender, sms.body, sms.parts, _ts(now), send_at and _ts(send_at), status),
        )
        self._delivery(db, mid, sms, now, status, status.value.upper())
        self._plan(db, mid, sms, start)
        return RecipientResult(sms.to, status, mid, sms.parts, key=sms.key, raw={"id": mid})

    def _plan(self, db: sqlite3.Connection, mid: str, sms: PreparedSms, start: datetime) -> None:
        final, raw, follow = MAGIC.get(sms.to[-4:], (Status.DELIVERED, "DELIVERED", None))
        sent_at = start + timedelta(seconds=self.sent_after)
        done_at = start + timedelta(seconds=self.delivered_after)
        self._delivery(db, mid, sms, sent_at, Status.SENT, "SENT")
        if final is Status.UNKNOWN:
            done_at = start + timedelta(seconds=self.validity)
        self._delivery(db, mid, sms, done_at, final, raw, REASONS.get(final))
        after = done_at + timedelta(seconds=self.reply_after)
        ref = sms.key
        if follow == "late-sent":
            self._delivery(db, mid, sms, sent_at, Status.SENT, "SENT", seq="dup", visible=after)
        elif follow and follow.startswith("reply:"):
            self._reply(db, sms.to, follow.split(":", 1)[1], after, in_reply_to=mid, ref=ref, to=sms.message.sender)
        elif follow == "stop":
            self._reply(db, sms.to, "STOP", after, in_reply_to=mid, ref=ref, to=sms.message.sender)
        elif follow == "link":
            hit = LinkHit(
                event_id_for("sandbox", "link_hit", mid),
                "sandbox",
                sms.to,
                after,
                mid,
                raw={"message_id": mid},
                url="https://sandbox.smsrelay.invalid/l/" + mid,
                message_ref=ref,
            )
            self._insert(db, hit, after)

    def _delivery(
        self,
        db: sqlite3.Connection,
        mid: str,
        sms: PreparedSms,
        at: datetime,
        status: Status,
        raw_status: str,
        reason: str | None = None,
        *,
        seq: str = "",
        visible: datetime | None = None,
    ) -> None:
        event = Delivery(
            event_id_for("sandbox", "delivery", mid, raw_status, seq),
            "sandbox",
            sms.to,
            at,
            mid,
            raw={"id": mid, "status": raw_status},
            status=status,
            raw_status=raw_status,
            reason=reason,
            message_ref=sms.key,
            parts=sms.parts,
        )
        self._insert(db, event, visible or at)

    def _reply(
        self,
        db: sqlite3.Connection,
        phone: str,
        text: str,
        at: datetime,
        *,
        in_reply_to: str | None = None,
        ref: str | None = None,
        to: str | None = None,
    ) -> Reply:
        rid = "sbx-mo-" + uuid.uuid4().hex[:16]
        reply = Reply(
            event_id_for("sandbox", "reply", rid),
            "sandbox",
            phone,
            at,
            rid,
            raw={"id": rid, "from": phone, "text": text},
            text=text,
            to=to,
            in_reply_to=in_reply_to,
            message_ref=ref,
        )
        self._insert(db, reply, at)
        if text.strip().upper() in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
            opt = OptOut(
                event_id_for("sandbox", "opt_out", rid), "sandbox", phone, at, in_reply_to, source="reply", text=text
            )
            self._insert(db, opt, at)
            db.execute("INSERT OR IGNORE INTO optouts (phone, at) VALUES (?, ?)", (phone, _ts(at)))
        return reply

    def _insert(self, db: sqlite3.Connection, event: Event, visible: datetime) -> None:
        db.execute(
            "INSERT OR IGNORE INTO events (event_id, at, message_id, data) VALUES (?, ?, ?, ?)",
            (event.event_id, _ts(visible), event.message_id, json.dumps(event_to_dict(event))),
        )

    def inject_reply(self, phone: str, text: str, *, in_reply_to: str | None = None, delay: float = 0.0) -> Reply:
        """Simulate an inbound SMS from ``phone`` (tests, demos, approval flows).

        >>> SandboxProvider(settings).inject_reply("+61491570156", "YES")  # doctest: +SKIP
        """
        from smsrelay.phone import normalize

        phone = normalize(phone)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            ref = None
            if in_reply_to is None:
                row = db.execute(
                    "SELECT id, key FROM messages WHERE phone = ? ORDER BY accepted_at DESC LIMIT 1", (phone,)
                ).fetchone()
                if row:
                    in_reply_to, ref = row
            reply = self._reply(
                db, phone, text, self.clock.now() + timedelta(seconds=delay), in_reply_to=in_reply_to, ref=ref
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return reply

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        out: dict[str, RecipientResult] = {}
        db = self._db()
        for key in keys:
            row = db.execute("SELECT id, phone, parts, status FROM messages WHERE key = ?", (key,)).fetchone()
            if row:
                out[key] = RecipientResult(row[1], Status(row[3]), row[0], row[2], key=key)
        return out

    def quote(self, batch: Sequence[PreparedSms]) -> Quote:
        return Quote(sum((PRICE_PER_PART * p.parts for p in batch), Decimal(0)), "credits")

    # -- reports and events ---------------------------------------------------
    def status(self, message_ids: Sequence[str]) -> list[Delivery]:
        db = self._db()
        now = _ts(self.clock.now())
        out: list[Delivery] = []
        for mid in message_ids:
            if not db.execute("SELECT 1 FROM messages WHERE id = ?", (mid,)).fetchone():
                raise NotFound(f"sandbox has no message {mid!r}", provider=self.name, status_code=404)
            for (data,) in db.execute(
                "SELECT data FROM events WHERE message_id = ? AND at <= ? ORDER BY at, seq", (mid, now)
            ):
                event = event_from_dict(json.loads(data))
                if isinstance(event, Delivery):
                    out.append(event)
        return out

    def poll_events(self, cursor: str | None, *, limit: int = 500) -> EventPage:
        try:
            at, seq = (float(x) for x in cursor.split(":")) if cursor else (0.0, 0.0)
        except ValueError:
            raise InvalidRequest(
                "not a sandbox event cursor; pass a page's cursor back as it was", field="cursor"
            ) from None
        now = _ts(self.clock.now())
        rows = (
            self._db()
            .execute(
                "SELECT at, seq, data FROM events WHERE at <= ? AND (at > ? OR (at = ? AND seq > ?))"
                " ORDER BY at, seq LIMIT ?",
                (now, at, at, seq, limit + 1),
            )
            .fetchall()
        )
        more = len(rows) > limit
        rows = rows[:limit]
        events = [event_from_dict(json.loads(r[2])) for r in rows]
        new_cursor = f"{rows[-1][0]!r}:{rows[-1][1]}" if rows else cursor
        return EventPage(events, new_cursor, more)

    # -- pushed events -------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> None:
        """Accept a push carrying ``webhook_secret`` in ``X-Smsrelay-Token`` or ``?token=``."""
        secret = self.settings.webhook_secret
        given = request.header("X-Smsrelay-Token")
        if given is None:
            given = next((v for k, v in request.params if k == "token"), None)
        # Always compare, even without a secret, so timing tells nothing.
        if not constant_time_equals(given or "", secret or "\x00") or not secret:
            raise WebhookError("missing or wrong sandbox webhook token", provider=self.name, status_code=401)

    def parse_webhook(self, request: WebhookRequest) -> list[Event]:
        """Core events from a JSON body ``{"events": [...]}``; ``WebhookError`` (400) if malformed.

        >>> provider.parse_webhook(WebhookRequest("POST", "/", body=b'{"events": []}'))  # doctest: +SKIP
        []
        """
        data = json_body(request, self.name)
        items = data.get("events") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise WebhookError('the body needs an "events" list', provider=self.name, status_code=400)
        return [self._pushed_event(i, item) for i, item in enumerate(items)]

    def _pushed_event(self, index: int, item: Any) -> Event:
        where = f"events[{index}]"
        try:
            if not isinstance(item, dict) or item.get("provider") != self.name:
                raise ValueError(f'must be an event object with "provider": "{self.name}"')
            if item.get("kind") not in ("delivery", "reply", "link_hit", "opt_out"):
                raise ValueError("kind must be delivery, reply, link_hit or opt_out")
            event = event_from_dict(item)
            for name in ("event_id", "phone"):
                if not isinstance(getattr(event, name), str) or not getattr(event, name):
                    raise ValueError(f"{name} must be a non-empty string")
            if event.occurred_at.tzinfo is None:
                raise ValueError("occurred_at needs a time zone")
            if not isinstance(event.raw, dict):
                raise ValueError("raw must be an object")
            json.dumps(event_to_dict(event))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise WebhookError(f"{where}: {detail}", provider=self.name, status_code=400) from None
        return event

    # -- account ------------------------------------------------------------------
    def cancel(self, message_id: str) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT phone, status, send_at FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"sandbox has no message {message_id!r}", provider=self.name, status_code=404)
            phone, status, send_at = row
            if status == Status.CANCELLED:
                raise NotCancellable("the message is already cancelled", reason="ALREADY_CANCELLED", provider=self.name)
            now = self.clock.now()
            if status != Status.SCHEDULED or send_at is None or send_at <= _ts(now):
                raise NotCancellable(
                    "only a scheduled message that has not gone out can be cancelled",
                    reason="NOT_SCHEDULED" if send_at is None else "ALREADY_PROCESSING",
                    provider=self.name,
                )
            db.execute("DELETE FROM events WHERE message_id = ? AND at > ?", (message_id, _ts(now)))
            db.execute("UPDATE messages SET status = ? WHERE id = ?", (Status.CANCELLED.value, message_id))
            event = Delivery(
                event_id_for("sandbox", "delivery", message_id, "CANCELLED"),
                "sandbox",
                phone,
                now,
                message_id,
                status=Status.CANCELLED,
                raw_status="CANCELLED",
            )
            self._insert(db, event, now)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def balance(self) -> Balance:
        (spent,) = (
            self._db().execute("SELECT COALESCE(SUM(parts), 0) FROM messages WHERE status != 'cancelled'").fetchone()
        )
        return Balance(CREDIT_START - PRICE_PER_PART * Decimal(spent), "credits")

    def check(self) -> None:
        self._db().execute("SELECT 1").fetchone()
