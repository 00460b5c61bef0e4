"""The bridge's own durable state: the event cursor, what it wrote, and the run log (SQLite).

The org stays the source of truth for each record's hand-off status (the claim is
written there before a send). This file holds what the org cannot: the cursor of
the provider's event feed, advanced only after Salesforce confirmed the writes;
the delivery status last written per message (so the merge rule needs no extra
query); and one row per run with its counts and the API calls it spent.

A pull window is staged here too, in a temporary table of the same connection (never
on disk with the state, gone when the bridge exits): events are folded into it page by
page and written back chunk by chunk, so the bridge's memory does not grow with the
window or with the number of events.

>>> state = State(":memory:")  # doctest: +SKIP
>>> state.set_cursor("events", "42"); state.cursor("events")  # doctest: +SKIP
'42'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smsrelay import ConfigError

__all__ = ["Applied", "Staged", "State", "StateLocked"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    sf_id TEXT,
    send_key TEXT,
    phone TEXT,
    sender TEXT,
    status TEXT,
    at REAL
);
CREATE INDEX IF NOT EXISTS messages_key ON messages (send_key);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    summary TEXT
);
"""
# The pull window being folded: one row per pending write, ordered by (o1, o2, o3, o4); a
# TEMP table, so it costs no fsync and a crash leaves nothing (the window is read again).
_STAGED = """
CREATE TEMP TABLE IF NOT EXISTS staged (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    o1 INTEGER NOT NULL,
    o2 INTEGER NOT NULL,
    o3 INTEGER NOT NULL,
    o4 TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, key)
);
"""
# Staged rows are (kind, key, (o1, o2, o3, o4), body).
Staged = tuple[str, str, tuple[int, int, int, str], bytes]


class StateLocked(ConfigError):
    """Another bridge process holds the state file: two syncs must not overlap."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What the bridge last wrote for one provider message."""

    message_id: str
    sf_id: str | None
    send_key: str | None
    phone: str | None
    sender: str | None
    status: str | None
    at: datetime | None


class State:
    """The SQLite state file. ``lock()`` keeps a second bridge on the same file out."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a cursor the bridge advanced must survive a power cut, or events replay
            # (harmless) -- but a lost "sent" row would cost an extra query, never a resend.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self.db.executescript(_STAGED)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the state file: {exc}", field="state_file", file=str(path)) from None
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"State(path={str(self.path)!r})"

    def close(self) -> None:
        self.unlock()
        self.db.close()

    # -- one process at a time ------------------------------------------------------
    def lock(self) -> None:
        """Take the exclusive lock; raise ``StateLocked`` if another sync holds it."""
        if str(self.path) == ":memory:" or self._lock_fd is not None:
            return
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateLocked(
                "another smsrelay-salesforce sync is running on this state file; "
                "runs must not overlap (check your scheduler)",
                file=str(self.path),
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- the event cursor -------------------------------------------------------------
    def cursor(self, name: str = "events") -> str | None:
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: str | None, applied: Iterable[Applied] = ()) -> None:
        """Advance the cursor, and record what was written, in one transaction."""
        with self.transaction() as db:
            self._remember(db, applied)
            db.execute(
                "INSERT INTO cursors (name, value, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                (name, value, datetime.now(UTC).timestamp()),
            )

    # -- what was written --------------------------------------------------------------
    def remember(self, applied: Iterable[Applied]) -> None:
        with self.transaction() as db:
            self._remember(db, applied)

    def remember_after(self, staged: Sequence[Applied], settle: Callable[[], Sequence[Applied]]) -> None:
        """Remember what ``settle`` returns, staging ``staged`` first: ``settle`` runs while the
        rows are written but not committed, and they are committed only if it returns them all
        (else they are rolled back and its answer is remembered). Nothing is kept if it raises.

        >>> state.remember_after(rows, lambda: write_back_and_keep_the_written(rows))  # doctest: +SKIP
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._remember(self.db, staged)
            kept = settle()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if kept is staged or list(kept) == list(staged):
            self.db.execute("COMMIT")
            return
        self.db.execute("ROLLBACK")
        self.remember(kept)

    @staticmethod
    def _remember(db: sqlite3.Connection, applied: Iterable[Applied]) -> None:
        db.executemany(
            "INSERT INTO messages (message_id, sf_id, send_key, phone, sender, status, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET"
            " sf_id = COALESCE(excluded.sf_id, sf_id), send_key = COALESCE(excluded.send_key, send_key),"
            " phone = COALESCE(excluded.phone, phone), sender = COALESCE(excluded.sender, sender),"
            " status = COALESCE(excluded.status, status), at = COALESCE(excluded.at, at)",
            [
                (a.message_id, a.sf_id, a.send_key, a.phone, a.sender, a.status, a.at.timestamp() if a.at else None)
                for a in applied
            ],
        )

    def applied(self, message_ids: Sequence[str]) -> dict[str, Applied]:
        """What the bridge knows of these provider message ids."""
        out: dict[str, Applied] = {}
        for i in range(0, len(message_ids), 500):
            chunk = list(message_ids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM messages WHERE message_id IN ({marks})", chunk):
                out[row[0]] = _applied(row)
        return out

    def by_keys(self, keys: Sequence[str]) -> dict[str, Applied]:
        """The same, found by the send keys (a reply's ``message_ref``)."""
        out: dict[str, Applied] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM messages WHERE send_key IN ({marks})", chunk):
                out[row[2]] = _applied(row)
        return out

    # -- the staged pull window ----------------------------------------------------------
    def stage(self, rows: Iterable[Staged], *, keep: str = "max") -> None:
        """Fold ``rows`` into the staged window: per (kind, key), the row whose order is the
        greatest (``keep="max"``) or the least (``keep="min"``) stays; on a tie, the first."""
        cmp = {"max": ">", "min": "<"}[keep]
        with self.transaction() as db:  # one transaction per page, not one per row
            db.executemany(
                "INSERT INTO staged (kind, key, o1, o2, o3, o4, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET o1 = excluded.o1, o2 = excluded.o2, o3 = excluded.o3,"
                " o4 = excluded.o4, body = excluded.body"
                f" WHERE (excluded.o1, excluded.o2, excluded.o3, excluded.o4) {cmp} (o1, o2, o3, o4)",
                [(kind, key, *order, body) for kind, key, order, body in rows],
            )

    def staged_count(self) -> int:
        """How many writes the staged window holds."""
        return int(self.db.execute("SELECT count(*) FROM staged").fetchone()[0])

    def staged_chunks(self, size: int) -> Iterator[list[tuple[str, bytes]]]:
        """The staged window as ``(kind, body)`` lists of at most ``size``, by kind then key.

        Read by key ranges, not one open cursor, so the caller may write between chunks."""
        last: tuple[str, str] = ("", "")
        while True:
            rows = self.db.execute(
                "SELECT kind, key, body FROM staged WHERE (kind, key) > (?, ?) ORDER BY kind, key LIMIT ?",
                (*last, size),
            ).fetchall()
            if not rows:
                return
            last = (rows[-1][0], rows[-1][1])
            yield [(kind, body) for kind, _key, body in rows]

    def clear_staged(self) -> None:
        self.db.execute("DELETE FROM staged")

    # -- the run log -----------------------------------------------------------------------
    def start_run(self, kind: str) -> int:
        cur = self.db.execute("INSERT INTO runs (kind, started) VALUES (?, ?)", (kind, datetime.now(UTC).timestamp()))
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, summary: Mapping[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished = ?, summary = ? WHERE id = ?",
            (datetime.now(UTC).timestamp(), json.dumps(summary, default=str), run_id),
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, kind, started, finished, summary FROM runs ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            {
                "id": r[0],
                "kind": r[1],
                "started": datetime.fromtimestamp(r[2], UTC),
                "finished": datetime.fromtimestamp(r[3], UTC) if r[3] else None,
                "summary": json.loads(r[4]) if r[4] else None,
            }
            for r in rows
        ]


def _applied(row: tuple[Any, ...]) -> Applied:
    return Applied(
        message_id=row[0],
        sf_id=row[1],
        send_key=row[2],
        phone=row[3],
        sender=row[4],
        status=row[5],
        at=datetime.fromtimestamp(row[6], UTC) if row[6] is not None else None,
    )
