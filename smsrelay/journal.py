"""The send journal: each idempotency key is used once, across calls, processes and re-runs.

A key is claimed, durably, before its request is written (``send_many`` claims each
request's keys once its rate-limit turn has come), and its outcome is recorded after. So a
later send with the same key finds one of three things:

- **accepted**: the recorded result comes back, and nothing is sent;
- **in flight** (claimed, no outcome: the process crashed mid-send, another one is
  sending it now, or it ended in doubt): the client reconciles it with the provider
  before it sends anything;
- **nothing**: the key is claimed, and sent.

A key whose send certainly did not reach the provider (refused, throttled, network
down before the request was written) is released, so it can be sent again.

The journal lives in the inbox's database (table ``sends``): SQLite by default, and
PostgreSQL when several machines send with the same keys. ``Inbox.compact`` forgets an
accepted key after the inbox's ``dedupe_window`` (14 days); a key in flight stays until
it is reconciled.

>>> journal = SendJournal(open_inbox(":memory:"))  # doctest: +SKIP
>>> claim = journal.begin("kudosity", ["order-1:+61491570156"])  # doctest: +SKIP
>>> claim.fresh  # doctest: +SKIP
['order-1:+61491570156']
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from smsrelay.model import RecipientResult, Status

if TYPE_CHECKING:
    from smsrelay.inbox import Inbox

__all__ = ["Claim", "SendJournal"]

Execute = Callable[[str, Sequence[Any]], Any]

_PENDING = "pending"  # claimed before the request; no outcome yet (or in doubt)
_DONE = "done"  # accepted; ``result`` holds the recorded RecipientResult
_BATCH = 500  # keys per statement: well under SQLite's and PostgreSQL's limits on parameters


@dataclass(frozen=True)
class Claim:
    """What the journal knew of a send's keys when it claimed them.

    ``recorded``: accepted before, with their results. ``in_flight``: claimed before
    without an outcome. ``fresh``: claimed now, by this send.
    """

    recorded: dict[str, RecipientResult] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)


def _dump(result: RecipientResult) -> str:
    return json.dumps(
        {
            "to": result.to,
            "status": result.status.value,
            "message_id": result.message_id,
            "parts": result.parts,
            "key": result.key,
        }
    )


def _load(text: str) -> RecipientResult:
    data: dict[str, Any] = json.loads(text)
    return RecipientResult(
        to=str(data["to"]),
        status=Status(data["status"]),
        message_id=data.get("message_id"),
        parts=int(data.get("parts") or 0),
        key=data.get("key"),
    )


def _batches(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(keys), _BATCH):
        yield keys[i : i + _BATCH]


def _marks(batch: Sequence[str]) -> str:
    """One placeholder per key: every value is a parameter."""
    return ", ".join("?" * len(batch))


def _sorted(rows: dict[str, tuple[str, str, str | None]], keys: Sequence[str], claim: str | None) -> Claim:
    """The journal's rows of ``keys`` as a Claim: ``claim``'s own new ones fresh, accepted, or in flight."""
    out = Claim()
    for key in keys:
        if key not in rows:
            continue
        state, claimed_by, result = rows[key]
        if claim is not None and claimed_by == claim and state == _PENDING:
            out.fresh.append(key)
        elif state == _DONE and result:
            out.recorded[key] = _load(result)
        else:
            out.in_flight.append(key)
    return out


class SendJournal:
    """Durable claims and outcomes of idempotency keys, in the inbox's database."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def __repr__(self) -> str:
        return f"SendJournal({self.inbox!r})"

    def begin(self, provider: str, keys: Sequence[str]) -> Claim:
        """Claim the keys not seen before, in one transaction; report the others.

        Two processes claiming one key at once: one claims it, the other finds it in
        flight (the write lock serialises them), so only one request is written. A few
        statements per 500 keys, not one per key: on PostgreSQL the transaction holds the
        inbox's write lock, and a request waits for its claim.
        """
        claim = uuid.uuid4().hex
        now = self.inbox.clock.now().timestamp()
        unique = list(dict.fromkeys(keys))
        with self.inbox.transaction() as execute:
            for batch in _batches(unique):
                values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(batch))
                execute(
                    "INSERT INTO sends (provider, key, state, claim, result, updated_at) "  # noqa: S608 (placeholders)
                    f"VALUES {values} ON CONFLICT (provider, key) DO NOTHING",
                    [v for key in batch for v in (provider, key, _PENDING, claim, None, now)],
                )
            rows = self._rows(execute, provider, unique)
        return _sorted(rows, unique, claim)

    def known(self, provider: str, keys: Sequence[str]) -> Claim:
        """What the journal holds of ``keys``, claiming none: accepted ones and ones in flight.

        ``send_many`` looks a window of keys up with this, then claims each request's keys
        (:meth:`begin`) only when its turn comes, so a crash leaves in flight only the
        requests that were leaving.
        """
        unique = list(dict.fromkeys(keys))
        with self.inbox.transaction() as execute:
            rows = self._rows(execute, provider, unique)
        return _sorted(rows, unique, None)

    @staticmethod
    def _rows(execute: Execute, provider: str, keys: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """State, claim and result of each of ``keys`` the journal holds."""
        out: dict[str, tuple[str, str, str | None]] = {}
        for batch in _batches(keys):
            sql = f"SELECT key, state, claim, result FROM sends WHERE provider = ? AND key IN ({_marks(batch)})"  # noqa: S608
            for key, state, claimed_by, result in execute(sql, (provider, *batch)).fetchall():
                out[str(key)] = (str(state), str(claimed_by), result)
        return out

    def finish(self, provider: str, results: Sequence[RecipientResult]) -> None:
        """Record each key's outcome: accepted is kept, in doubt stays in flight, not sent is released."""
        now = self.inbox.clock.now().timestamp()
        done: dict[str, str] = {}
        doubt: list[str] = []
        released: list[str] = []
        for r in results:
            if not r.key:
                continue
            if r.accepted or (r.message_id and not r.in_doubt):
                done[r.key] = _dump(r)
            elif r.in_doubt:
                doubt.append(r.key)
            else:
                released.append(r.key)
        with self.inbox.transaction() as execute:
            for batch in _batches(list(done)):
                values = ", ".join(["(?, ?)"] * len(batch))
                execute(
                    f"WITH v (key, result) AS (VALUES {values}) "  # noqa: S608 (placeholders)
                    "UPDATE sends SET state = ?, result = v.result, updated_at = ? FROM v "
                    "WHERE sends.provider = ? AND sends.key = v.key",
                    [*(v for key in batch for v in (key, done[key])), _DONE, now, provider],
                )
            for batch in _batches(doubt):
                execute(
                    f"UPDATE sends SET updated_at = ? WHERE provider = ? AND key IN ({_marks(batch)})",  # noqa: S608
                    [now, provider, *batch],
                )
            for batch in _batches(released):
                execute(f"DELETE FROM sends WHERE provider = ? AND key IN ({_marks(batch)})", [provider, *batch])  # noqa: S608

    def in_flight(self, provider: str, *, older_than: timedelta = timedelta(0)) -> list[str]:
        """Keys claimed without an outcome (crashed or in doubt), oldest first: ``smsrelay reconcile``'s work."""
        horizon = (self.inbox.clock.now() - older_than).timestamp()
        with self.inbox.transaction() as execute:
            rows = execute(
                "SELECT key FROM sends WHERE provider = ? AND state = ? AND updated_at <= ? ORDER BY updated_at, key",
                (provider, _PENDING, horizon),
            ).fetchall()
        return [str(r[0]) for r in rows]
