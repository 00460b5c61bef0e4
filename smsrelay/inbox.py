"""The durable event inbox: an ordered, deduplicated log of core events.

The webhook receiver appends what providers push, the feed appends what it polls,
and every reader drains the log with its own named, durable cursor:

>>> inbox = open_inbox(":memory:")
>>> inbox.append([event]).added  # doctest: +SKIP
1
>>> page = inbox.read("bridge")  # doctest: +SKIP
>>> inbox.commit("bridge", page.position)  # doctest: +SKIP

Guarantees, on both backends (SQLite in WAL mode, the embedded default; and
PostgreSQL for several receiver replicas):

- **Deduplicated** on ``event_id``, also after compaction (ids are remembered for
  ``dedupe_window``), so a provider's redelivery is stored once.
- **Ordered**: positions increase in commit order. PostgreSQL appends take a
  transaction-level advisory lock, because a sequence alone may commit position 10
  before 9, and a reader that passed 10 would never see 9.
- **At least once** to each reader: :meth:`Inbox.read` returns events after the
  cursor's committed position, and only :meth:`Inbox.commit` moves it on.
- **The merge rule**: a delivery report that does not supersede the stored status of
  its message (a late ``sent`` after ``delivered``) is kept but marked superseded,
  and readers skip it unless they ask for it.
- **Compaction** removes events that every cursor has passed.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from smsrelay.clock import Clock, SystemClock
from smsrelay.errors import ConfigError, InvalidRequest
from smsrelay.lifecycle import precedence
from smsrelay.model import Delivery, Event, Status, event_from_dict, event_to_dict
from smsrelay.redaction import redact

__all__ = [
    "AppendResult",
    "Entry",
    "Inbox",
    "InboxPage",
    "PostgresInbox",
    "SqliteInbox",
    "open_inbox",
]

log = logging.getLogger("smsrelay.inbox")

DEFAULT_DEDUPE_WINDOW = timedelta(days=14)
_CURSOR_NAME = re.compile(r"^[A-Za-z0-9_.:@/-]{1,200}$")
# Any constant: the advisory lock that serialises PostgreSQL appends.
_PG_APPEND_LOCK = 0x5E5_1B0C


@dataclass(frozen=True)
class Entry:
    """One event in the log, at ``position``."""

    position: int
    event: Event
    received_at: datetime
    superseded: bool = False
    # The account it came in for (a receiver route, a router account); None in rows from before.
    account: str | None = None


@dataclass(frozen=True)
class InboxPage:
    """Entries after a position; ``position`` is where the next read starts.

    Iterating a page yields its events.
    """

    entries: Sequence[Entry]
    position: int
    more: bool = False

    @property
    def events(self) -> list[Event]:
        return [e.event for e in self.entries]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class AppendResult:
    """How many events were new, already stored, and stored as superseded."""

    added: int = 0
    duplicates: int = 0
    superseded: int = 0


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _CURSOR_NAME.match(name):
        raise InvalidRequest(
            f"cursor name {name!r} is not valid: use 1 to 200 letters, digits or _ . : @ / -", field="cursor"
        )
    return name


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _message_key(event: Delivery) -> str | None:
    if not event.message_id:
        return None
    return f"{event.provider}\x1f{event.message_id}"


P = ParamSpec("P")
R = TypeVar("R")


def _reconnecting(fn: Callable[Concatenate[Inbox, P], R]) -> Callable[Concatenate[Inbox, P], R]:
    """Run once more on a fresh connection when the first failed on a dead one.

    Safe because every operation is idempotent: appends dedupe on ``event_id``,
    cursors only move forward, and the rest are reads or deletes.
    """

    @functools.wraps(fn)
    def wrapper(self: Inbox, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self._local.discarded = False
        try:
            return fn(self, *args, **kwargs)
        except Exception:
            if not getattr(self._local, "discarded", False):
                raise
            log.warning("inbox: the database connection was lost; retrying on a new one")
            self._local.discarded = False
            return fn(self, *args, **kwargs)

    return wrapper


def _encode(event: Event) -> str:
    return json.dumps(event_to_dict(event), ensure_ascii=False, default=str)


@dataclass
class _Pending:
    events: Sequence[Event]
    source: tuple[str, str | None] | None
    account: str | None
    # Each event's JSON, encoded by the appending thread: the writer then holds the write
    # lock (PostgreSQL's advisory lock, SQLite's) only for the statements, not for encoding.
    data: Sequence[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: AppendResult | None = None
    error: BaseException | None = None
    # Called on the writer thread once result or error is set (an event loop's waker).
    on_done: Callable[[_Pending], None] | None = None


class _GroupCommit:
    """One writer thread that commits the appends waiting at the time together.

    A transaction per request would cap throughput at one commit (and, on
    PostgreSQL, one advisory-lock round trip) per request.
    """

    MAX_GROUP = 256

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.cond = threading.Condition()
        self.queue: list[_Pending] = []
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="smsrelay-inbox-writer", daemon=True)
        self.thread.start()

    def enqueue(self, pending: _Pending) -> None:
        with self.cond:
            if self.closed:
                raise InvalidRequest("the inbox is closed", field="inbox")
            self.queue.append(pending)
            self.cond.notify()

    def submit(
        self, events: Sequence[Event], source: tuple[str, str | None] | None, account: str | None = None
    ) -> AppendResult:
        pending = _Pending(events, source, account, [_encode(e) for e in events])
        self.enqueue(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if not self.queue:
                    return
                batch, self.queue = self.queue[: self.MAX_GROUP], self.queue[self.MAX_GROUP :]
            try:
                self.inbox._append_group(batch)
            except BaseException as exc:
                for p in batch:
                    p.error = exc
            finally:
                for p in batch:
                    p.done.set()
                    if p.on_done is not None:
                        try:
                            p.on_done(p)
                        except Exception:  # a waker must never stop the writer: every append would hang
                            log.exception("inbox: could not wake a waiting append")

    def stop(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join(30)


# How long close() waits for a transaction in another thread to end before leaving its connection.
_CLOSE_WAIT = 60.0


class Inbox(abc.ABC):
    """The log's interface; :func:`open_inbox` picks the backend from a URL."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        dedupe_window: timedelta = DEFAULT_DEDUPE_WINDOW,
        group_commit: bool = True,
    ) -> None:
        self.clock = clock or SystemClock()
        self.dedupe_window = dedupe_window
        self.group_commit = group_commit
        self._group: _GroupCommit | None = None
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        # Held while a connection is in a transaction: close() waits for it, as closing an
        # SQLite connection under a query running in another thread crashes the interpreter
        # (e.g. a cancelled Airflow trigger's read, still in its worker thread).
        self._in_use: dict[Any, threading.RLock] = {}

    # -- backend hooks ------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> Any: ...

    @abc.abstractmethod
    def _transaction(self, conn: Any, write: bool) -> Any: ...

    def _sql(self, sql: str) -> str:
        return sql

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._track(conn)
        return conn

    def _track(self, conn: Any) -> None:
        """Remember a new connection, for close(), with the lock its transactions hold."""
        with self._conns_lock:
            self._conns.append(conn)
            self._in_use[conn] = threading.RLock()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Any]:
        conn = self._conn()
        with self._in_use.get(conn) or contextlib.nullcontext():  # none once close() has let it go
            try:
                with self._transaction(conn, write) as cur:
                    yield cur
            except Exception:
                if self._is_broken(conn):
                    self._discard(conn)  # e.g. the database restarted: the next call reconnects
                raise

    def _is_broken(self, conn: Any) -> bool:
        return False

    def _discard(self, conn: Any) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        self._local.discarded = True
        with self._conns_lock:
            if conn in self._conns:
                self._conns.remove(conn)
            self._in_use.pop(conn, None)
        with contextlib.suppress(Exception):
            conn.close()

    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    # -- for other stores in the same database (the send journal) --------------------
    @contextmanager
    def transaction(self) -> Iterator[Callable[[str, Sequence[Any]], Any]]:
        """One write transaction; yields ``execute(sql, params)`` with ``?`` placeholders.

        The send journal keeps its table in the inbox's database through this, so both
        share one file (SQLite) or one server (PostgreSQL), and their connections.

        >>> with inbox.transaction() as execute:  # doctest: +SKIP
        ...     execute("SELECT 1", ()).fetchone()
        """
        with self._tx() as cur:
            yield lambda sql, params: self._exec(cur, sql, params)

    # -- writing ------------------------------------------------------------------
    @_reconnecting
    def append(
        self,
        events: Sequence[Event],
        *,
        source: tuple[str, str | None] | None = None,
        account: str | None = None,
    ) -> AppendResult:
        """Store events durably, once each; return when they are committed.

        ``account`` names the account they came in for (the receiver's route, a router's
        account), stored with each new event. Dedupe stays on ``event_id`` alone: an event
        pushed and polled is stored once, with the account of whichever came first.
        ``source`` is ``(name, cursor)`` of a poller: the cursor is stored in the
        same transaction as the events, so a restart neither replays nor skips.
        Concurrent appends are committed together (group commit): each caller
        still returns only once its own events are durable.

        >>> open_inbox(":memory:").append([]).added
        0
        """
        if source is not None:
            _check_name(source[0])
        if not self.group_commit:
            data = [_encode(e) for e in events]  # before the write lock, as the group commit does
            with self._tx() as cur:
                return self._append_in(cur, events, source, _ts(self.clock.now()), account, data)
        return self._batcher().submit(events, source, account)

    async def append_async(
        self,
        events: Sequence[Event],
        *,
        source: tuple[str, str | None] | None = None,
        account: str | None = None,
    ) -> AppendResult:
        """:meth:`append` for an event loop: it waits for the commit without holding a thread.

        The events join the group commit directly; the writer thread wakes the loop once
        they are durable. Cancelling the wait does not cancel the append.

        >>> asyncio.run(open_inbox(":memory:").append_async([])).added
        0
        """
        if source is not None:
            _check_name(source[0])
        if not self.group_commit:
            return await asyncio.to_thread(self.append, events, source=source, account=account)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()

        def settle(p: _Pending) -> None:
            if future.done():  # the waiter was cancelled (its client went away)
                return
            if p.error is not None:
                future.set_exception(p.error)
            else:
                assert p.result is not None
                future.set_result(p.result)

        def wake(p: _Pending) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, p)

        self._batcher().enqueue(_Pending(events, source, account, [_encode(e) for e in events], on_done=wake))
        return await future

    def _append_in(
        self,
        cur: Any,
        events: Sequence[Event],
        source: tuple[str, str | None] | None,
        now: float,
        account: str | None,
        data: Sequence[str],
    ) -> AppendResult:
        """Store ``events`` (``data``: each one's JSON) in the open transaction ``cur``."""
        added = dupes = stale = 0
        for i, event in enumerate(events):
            eid = event.event_id
            if self._exec(cur, "SELECT 1 FROM tombstones WHERE event_id = ?", (eid,)).fetchone():
                dupes += 1
                continue
            superseded = isinstance(event, Delivery) and not self._take_status(cur, event, now)
            row = self._exec(
                cur,
                "INSERT INTO events (event_id, provider, kind, message_id, received_at, superseded, data, account)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (eid, event.provider, event.kind, event.message_id, now, int(superseded), data[i], account),
            ).fetchone()
            if row is None:
                dupes += 1
            else:
                added += 1
                stale += int(superseded)
        if source is not None:
            name, value = source
            self._exec(
                cur,
                "INSERT INTO sources (name, cursor, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (name, value, now),
            )
        return AppendResult(added, dupes, stale)

    def _batcher(self) -> _GroupCommit:
        with self._conns_lock:
            if self._group is None:
                self._group = _GroupCommit(self)
            return self._group

    @_reconnecting
    def _append_group(self, batch: Sequence[_Pending]) -> None:
        """Commit a group of appends in one transaction; on failure, each alone."""
        now = _ts(self.clock.now())
        try:
            with self._tx() as cur:
                results = self._append_many(cur, batch, now)
        except Exception:
            if len(batch) == 1:
                raise
            # One bad append must not fail the others: retry each in its own transaction.
            for p in batch:
                try:
                    with self._tx() as cur:
                        (p.result,) = self._append_many(cur, [p], now)
                except Exception as exc:
                    p.error = exc
            return
        for p, r in zip(batch, results, strict=True):
            p.result = r

    def _append_many(self, cur: Any, batch: Sequence[_Pending], now: float) -> list[AppendResult]:
        """Every append of a group, in order, in the open transaction ``cur``."""
        return [self._append_in(cur, p.events, p.source, now, p.account, p.data) for p in batch]

    def _take_status(self, cur: Any, event: Delivery, now: float) -> bool:
        """Record ``event`` as its message's status if it supersedes the stored one."""
        key = _message_key(event)
        if key is None:
            return True
        row = self._exec(cur, "SELECT status, occurred_at, event_id FROM statuses WHERE message = ?", (key,)).fetchone()
        new = precedence(event.status, event.occurred_at, event.event_id)
        if row is not None:
            old = precedence(Status(row[0]), datetime.fromtimestamp(row[1], UTC), row[2])
            if row[2] == event.event_id:
                return True
            if new <= old:
                return False
        self._exec(
            cur,
            "INSERT INTO statuses (message, status, occurred_at, event_id, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (message) DO UPDATE SET status = excluded.status, occurred_at = excluded.occurred_at,"
            " event_id = excluded.event_id, updated_at = excluded.updated_at",
            (key, event.status.value, _ts(event.occurred_at), event.event_id, now),
        )
        return True

    # -- reading ------------------------------------------------------------------
    def read(self, cursor: str, limit: int = 500, *, include_superseded: bool = False) -> InboxPage:
        """Events after the committed position of ``cursor`` (a new cursor starts at the beginning).

        Reading does not move the cursor: :meth:`commit` the page's ``position``
        once its events are handled, so a crash in between re-delivers them.
        """
        return self.read_after(self.position(cursor), limit, include_superseded=include_superseded)

    @_reconnecting
    def read_after(self, position: int, limit: int = 500, *, include_superseded: bool = False) -> InboxPage:
        """Events after ``position``, for readers that keep their own position."""
        if limit < 1:
            raise InvalidRequest(f"limit must be at least 1, got {limit}", field="limit")
        with self._tx(write=False) as cur:
            rows = self._exec(
                cur,
                "SELECT seq, received_at, superseded, data, account FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (position, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [
            Entry(int(r[0]), event_from_dict(json.loads(r[3])), datetime.fromtimestamp(r[1], UTC), bool(r[2]), r[4])
            for r in rows
        ]
        last = entries[-1].position if entries else position
        if not include_superseded:
            entries = [e for e in entries if not e.superseded]
        return InboxPage(entries, last, more)

    # -- cursors ------------------------------------------------------------------
    @_reconnecting
    def position(self, cursor: str) -> int:
        """The committed position of ``cursor``; 0 for a cursor never committed."""
        with self._tx(write=False) as cur:
            row = self._exec(cur, "SELECT position FROM cursors WHERE name = ?", (_check_name(cursor),)).fetchone()
        return int(row[0]) if row else 0

    @_reconnecting
    def commit(self, cursor: str, position: int) -> None:
        """Advance ``cursor`` to ``position``; it never moves backwards.

        >>> inbox = open_inbox(":memory:"); inbox.commit("bridge", 0); inbox.position("bridge")
        0
        """
        _check_name(cursor)
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise InvalidRequest(f"position must be a whole number of at least 0, got {position!r}", field="position")
        with self._tx() as cur:
            (top,) = self._exec(cur, "SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            (high,) = self._exec(cur, "SELECT COALESCE(MAX(position), 0) FROM cursors").fetchone()
            if position > max(int(top), int(high)):
                raise InvalidRequest(
                    f"position {position} is beyond the end of the inbox ({top}); commit a page's position",
                    field="position",
                )
            self._exec(
                cur,
                "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET position = CASE WHEN excluded.position > cursors.position THEN excluded.position"
                " ELSE cursors.position END, updated_at = excluded.updated_at",
                (cursor, position, _ts(self.clock.now())),
            )

    @_reconnecting
    def cursors(self) -> dict[str, int]:
        """Every named cursor and its committed position."""
        with self._tx(write=False) as cur:
            rows = self._exec(cur, "SELECT name, position FROM cursors ORDER BY name").fetchall()
        return {str(n): int(p) for n, p in rows}

    @_reconnecting
    def drop_cursor(self, cursor: str) -> None:
        """Forget a reader that is gone, so it no longer holds back compaction."""
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM cursors WHERE name = ?", (_check_name(cursor),))

    @_reconnecting
    def source_cursor(self, name: str) -> str | None:
        """The cursor a poller stored with its last :meth:`append`."""
        with self._tx(write=False) as cur:
            row = self._exec(cur, "SELECT cursor FROM sources WHERE name = ?", (_check_name(name),)).fetchone()
        return None if row is None else row[0]

    # -- messages awaiting a report (providers polled by message id) ----------------
    @_reconnecting
    def watch(self, provider: str, messages: Mapping[str, str | None], *, account: str | None = None) -> None:
        """Remember sent messages (id → phone) whose reports the feed must ask for.

        For providers that can report a message's status but cannot list events
        (Kaleyra): the feed polls their status until it is final. ``account`` names the
        account that sent them (a router's), so two accounts of one provider each ask
        for their own; given for a message already watched, it is recorded on it.
        """
        now = _ts(self.clock.now())
        with self._tx() as cur:
            for mid, phone in messages.items():
                self._exec(
                    cur,
                    "INSERT INTO watch (provider, message_id, phone, added_at, account) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (provider, message_id) DO UPDATE SET account = COALESCE(excluded.account,"
                    " watch.account)",
                    (provider, mid, phone, now, account),
                )

    @_reconnecting
    def watched(self, provider: str, limit: int = 500, *, account: str | None = None) -> dict[str, str | None]:
        """Messages still awaiting a final report, oldest first (id → phone); given ``account``, its own only."""
        with self._tx(write=False) as cur:
            if account is None:
                rows = self._exec(
                    cur,
                    "SELECT message_id, phone FROM watch WHERE provider = ? ORDER BY added_at, message_id LIMIT ?",
                    (provider, limit),
                ).fetchall()
            else:
                rows = self._exec(
                    cur,
                    "SELECT message_id, phone FROM watch WHERE provider = ? AND account = ?"
                    " ORDER BY added_at, message_id LIMIT ?",
                    (provider, account, limit),
                ).fetchall()
        return {str(r[0]): r[1] for r in rows}

    @_reconnecting
    def unwatch(self, provider: str, message_ids: Sequence[str]) -> None:
        """Stop asking for these messages (their report is final)."""
        with self._tx() as cur:
            for mid in message_ids:
                self._exec(cur, "DELETE FROM watch WHERE provider = ? AND message_id = ?", (provider, mid))

    # -- housekeeping -------------------------------------------------------------
    @_reconnecting
    def compact(self) -> int:
        """Delete the events every cursor has passed; return how many went.

        With no cursor at all nothing is deleted: no reader has consumed anything.
        Their ids are remembered for ``dedupe_window``, so late redeliveries still dedupe.
        """
        now = _ts(self.clock.now())
        horizon = now - self.dedupe_window.total_seconds()
        with self._tx() as cur:
            (low,) = self._exec(cur, "SELECT MIN(position) FROM cursors").fetchone()
            removed = 0
            if low is not None:
                self._exec(
                    cur,
                    "INSERT INTO tombstones (event_id, removed_at) SELECT event_id, ? FROM events WHERE seq <= ?"
                    " ON CONFLICT (event_id) DO NOTHING",
                    (now, int(low)),
                )
                removed = self._exec(cur, "DELETE FROM events WHERE seq <= ?", (int(low),)).rowcount
            self._exec(cur, "DELETE FROM tombstones WHERE removed_at < ?", (horizon,))
            self._exec(cur, "DELETE FROM statuses WHERE updated_at < ?", (horizon,))
            # A message with no final report within the window will not get one.
            self._exec(cur, "DELETE FROM watch WHERE added_at < ?", (horizon,))
            # The send journal remembers accepted keys as long as event ids; keys in flight
            # stay until they are reconciled.
            self._exec(cur, "DELETE FROM sends WHERE state = 'done' AND updated_at < ?", (horizon,))
        if removed:
            log.info("inbox compacted: %d events removed", removed)
        return int(removed)

    @_reconnecting
    def count(self) -> int:
        """How many events the log holds now."""
        with self._tx(write=False) as cur:
            (n,) = self._exec(cur, "SELECT COUNT(*) FROM events").fetchone()
        return int(n)

    @_reconnecting
    def ping(self) -> None:
        """Raise unless the store answers (the receiver's readiness check)."""
        with self._tx(write=False) as cur:
            self._exec(cur, "SELECT 1").fetchone()

    def close(self) -> None:
        """Stop the group committer and close every connection this inbox opened."""
        with self._conns_lock:
            group, self._group = self._group, None
        if group is not None:
            group.stop()
        with self._conns_lock:
            conns, self._conns = self._conns, []
            in_use, self._in_use = self._in_use, {}
        for conn in conns:
            lock = in_use.get(conn)
            if lock is not None and not lock.acquire(timeout=_CLOSE_WAIT):
                log.warning("inbox: a connection still in a transaction after %g s is left open", _CLOSE_WAIT)
                continue
            try:
                with contextlib.suppress(Exception):  # closing is best effort
                    conn.close()
            finally:
                if lock is not None:
                    lock.release()
        self._local = threading.local()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Tables that gained an ``account`` column after inboxes existed: migrated as an inbox opens.
_ACCOUNT_TABLES = ("events", "watch")

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT,
    received_at REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    account TEXT
);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sources (name TEXT PRIMARY KEY, cursor TEXT, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (event_id TEXT PRIMARY KEY, removed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (
    message TEXT PRIMARY KEY, status TEXT NOT NULL, occurred_at REAL NOT NULL,
    event_id TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watch (
    provider TEXT NOT NULL, message_id TEXT NOT NULL, phone TEXT, added_at REAL NOT NULL, account TEXT,
    PRIMARY KEY (provider, message_id)
);
CREATE TABLE IF NOT EXISTS sends (
    provider TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, claim TEXT NOT NULL,
    result TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (provider, key)
);
"""


class SqliteInbox(Inbox):
    """The embedded inbox: one SQLite file in WAL mode.

    A commit survives the process being killed (WAL with ``synchronous=NORMAL``
    loses nothing on a process crash; ``durable=True`` also survives power loss).
    """

    def __init__(self, path: str | Path, *, durable: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = str(path)
        self.durable = durable
        self._memory = self.path == ":memory:"
        # One writer at a time in this process: cheaper than SQLite's busy-wait.
        self._write_lock = threading.Lock()
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            conn = self._conn()
            conn.executescript(_SQLITE_SCHEMA)
            # Inboxes created before rows named their account: add the column (NULL in old rows).
            for table in _ACCOUNT_TABLES:
                if "account" in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    continue
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN account TEXT")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise

    def __repr__(self) -> str:
        return f"SqliteInbox({self.path!r})"

    def _conn(self) -> Any:
        if self._memory:  # one shared connection, or each thread would see its own empty database
            if not self._conns:
                self._track(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
            return self._conns[0]
        return super()._conn()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Cursor]:
        lock = self._write_lock if (write or self._memory) else None
        if lock is not None:
            lock.acquire()
        try:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        finally:
            if lock is not None:
                lock.release()


_PG_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        provider TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_id TEXT,
        received_at DOUBLE PRECISION NOT NULL,
        superseded INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL,
        account TEXT)""",
    "CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, position BIGINT NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sources (name TEXT PRIMARY KEY, cursor TEXT, updated_at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tombstones (event_id TEXT PRIMARY KEY, removed_at DOUBLE PRECISION NOT NULL)",
    """CREATE TABLE IF NOT EXISTS statuses (
        message TEXT PRIMARY KEY, status TEXT NOT NULL, occurred_at DOUBLE PRECISION NOT NULL,
        event_id TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS watch (
        provider TEXT NOT NULL, message_id TEXT NOT NULL, phone TEXT, added_at DOUBLE PRECISION NOT NULL,
        account TEXT, PRIMARY KEY (provider, message_id))""",
    """CREATE TABLE IF NOT EXISTS sends (
        provider TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, claim TEXT NOT NULL,
        result TEXT, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (provider, key))""",
]


class PostgresInbox(Inbox):
    """The inbox in PostgreSQL, shared by several receiver replicas (``psycopg`` 3)."""

    def __init__(self, url: str, **kw: Any) -> None:
        super().__init__(**kw)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError("a PostgreSQL inbox needs psycopg; install smsrelay[server]", field="inbox") from None
        self.url = url
        with self._tx() as cur:
            # Replicas may start together; the lock makes CREATE IF NOT EXISTS safe.
            self._exec(cur, "SELECT pg_advisory_xact_lock(?)", (_PG_APPEND_LOCK + 1,))
            for stmt in _PG_SCHEMA:
                self._exec(cur, stmt)
            # Inboxes created before rows named their account: add the column (NULL in old rows).
            # Asked first, as ALTER TABLE locks the table even when there is nothing to add.
            for table in _ACCOUNT_TABLES:
                if not self._exec(
                    cur,
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND table_name = ? AND column_name = 'account'",
                    (table,),
                ).fetchone():
                    self._exec(cur, f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS account TEXT")

    def __repr__(self) -> str:
        return f"PostgresInbox({redact(self.url)!r})"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot connect to the PostgreSQL inbox {redact(self.url)!r}: {redact(str(exc))}",
                field="inbox",
            ) from None

    @contextmanager
    def _transaction(self, conn: Any, write: bool) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cur:
            if write:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_APPEND_LOCK,))
            yield cur

    def _append_many(self, cur: Any, batch: Sequence[_Pending], now: float) -> list[AppendResult]:
        """A group's appends in a fixed number of statements, not two per event.

        A round trip per statement made a replica wait on the network while it held the
        append lock. Arrays go in binary (``%b``): psycopg's text format escapes every
        quote of the JSON with a regular expression. The outcome is the per-event rule's, event by event: the lock keeps
        other writers out, so the ids and statuses read first are still current.
        """
        events = [e for p in batch for e in p.events]
        ids = list({e.event_id for e in events})
        seen: dict[str, bool] = {}  # event_id -> tombstoned (True) or stored (False)
        # A scalar subquery per id: it always probes the unique index. "= ANY(?)" and
        # EXISTS may be planned as a scan of the whole table, once the group is large.
        if ids:
            for eid, tomb, stored in cur.execute(
                "SELECT id, (SELECT true FROM tombstones WHERE event_id = id),"
                " (SELECT true FROM events WHERE event_id = id) FROM unnest(%b::text[]) AS t(id)",
                (ids,),
            ).fetchall():
                if tomb or stored:
                    seen[eid] = bool(tomb)
        keys = list({k for e in events if isinstance(e, Delivery) and (k := _message_key(e))})
        statuses: dict[str, tuple[str, float, str]] = {}
        if keys:
            rows = cur.execute(
                "SELECT k, (SELECT ROW(status, occurred_at, event_id) FROM statuses WHERE message = k)"
                " FROM unnest(%b::text[]) AS t(k)",
                (keys,),
            ).fetchall()
            statuses = {str(k): (str(r[0]), float(r[1]), str(r[2])) for k, r in rows if r is not None}
        changed: dict[str, tuple[str, float, str]] = {}

        def take_status(event: Delivery) -> bool:  # Inbox._take_status, on the rows read above
            key = _message_key(event)
            if key is None:
                return True
            old = statuses.get(key)
            if old is not None:
                if old[2] == event.event_id:
                    return True
                stored = precedence(Status(old[0]), datetime.fromtimestamp(old[1], UTC), old[2])
                if precedence(event.status, event.occurred_at, event.event_id) <= stored:
                    return False
            statuses[key] = changed[key] = (event.status.value, _ts(event.occurred_at), event.event_id)
            return True

        rows_in: list[tuple[Any, ...]] = []
        results = []
        for p in batch:
            added = dupes = stale = 0
            for i, event in enumerate(p.events):
                eid = event.event_id
                if seen.get(eid):  # tombstoned: compacted, still deduplicated
                    dupes += 1
                    continue
                superseded = isinstance(event, Delivery) and not take_status(event)
                if eid in seen:
                    dupes += 1
                    continue
                seen[eid] = False
                rows_in.append(
                    (eid, event.provider, event.kind, event.message_id, now, int(superseded), p.data[i], p.account)
                )
                added += 1
                stale += int(superseded)
            results.append(AppendResult(added, dupes, stale))
        if rows_in:
            # WITH ORDINALITY ... ORDER BY: positions follow the order the events came in.
            cur.execute(
                "INSERT INTO events (event_id, provider, kind, message_id, received_at, superseded, data, account)"
                " SELECT e, p, k, m, r, s, d, a FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
                " %b::float8[], %b::int[], %b::text[], %b::text[]) WITH ORDINALITY AS t(e, p, k, m, r, s, d, a, n)"
                " ORDER BY n ON CONFLICT (event_id) DO NOTHING",
                [list(column) for column in zip(*rows_in, strict=True)],
            )
        if changed:
            cur.execute(
                "INSERT INTO statuses (message, status, occurred_at, event_id, updated_at)"
                " SELECT m, s, o, e, %b FROM unnest(%b::text[], %b::text[], %b::float8[], %b::text[])"
                " AS t(m, s, o, e)"
                " ON CONFLICT (message) DO UPDATE SET status = excluded.status, occurred_at = excluded.occurred_at,"
                " event_id = excluded.event_id, updated_at = excluded.updated_at",
                [now, list(changed), *([v[i] for v in changed.values()] for i in range(3))],
            )
        for p in batch:
            if p.source is not None:
                self._append_in(cur, [], p.source, now, None, ())
        return results


def open_inbox(url: str | Path, *, clock: Clock | None = None, **kw: Any) -> Inbox:
    """Open an inbox by URL: ``postgresql://…``, ``sqlite:///path``, or a file path.

    >>> open_inbox(":memory:")
    SqliteInbox(':memory:')
    """
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresInbox(text, clock=clock, **kw)
    if text.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db
        text = text[len("sqlite:///") :] or ":memory:"
    elif text.startswith("sqlite://"):
        raise ConfigError(f"use sqlite:///path for an SQLite inbox, got {text!r}", field="inbox")
    elif "://" in text:
        raise ConfigError(
            f"unknown inbox URL scheme in {redact(text)!r}; use postgresql://… or sqlite:///path", field="inbox"
        )
    return SqliteInbox(text, clock=clock, **kw)
