"""The send journal: each idempotency key is used once, across calls, processes and re-runs.

A key is claimed, durably, before its request is written (``send_many`` claims each
request's keys as a worker takes it), and its outcome is recorded after. So a later send
with the same key finds one of three things:

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from smsrelay.model import RecipientResult, Status

if TYPE_CHECKING:
    from smsrelay.inbox import Inbox

__all__ = ["Claim", "SendJournal"]

_PENDING = "pending"  # claimed before the request; no outcome yet (or in doubt)
_DONE = "done"  # accepted; ``result`` holds the recorded RecipientResult
_LOOKUP_BATCH = 500  # keys per SELECT … IN: well under SQLite's limit on parameters


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


class SendJournal:
    """Durable claims and outcomes of idempotency keys, in the inbox's database."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def __repr__(self) -> str:
        return f"SendJournal({self.inbox!r})"

    def begin(self, provider: str, keys: Sequence[str]) -> Claim:
        """Claim the keys not seen before, in one transaction; report the others.

        Two processes claiming one key at once: one claims it, the other finds it in
        flight (the write lock serialises them), so only one request is written.
        """
        claim = uuid.uuid4().hex
        now = self.inbox.clock.now().timestamp()
        out = Claim()
        with self.inbox.transaction() as execute:
            for key in dict.fromkeys(keys):
                # One statement for a new key (the common case); a second only for a known one.
                inserted = execute(
                    "INSERT INTO sends (provider, key, state, claim, result, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (provider, key) DO NOTHING",
                    (provider, key, _PENDING, claim, None, now),
                ).rowcount
                if inserted == 1:
                    out.fresh.append(key)
                    continue
                row = execute("SELECT state, result FROM sends WHERE provider = ? AND key = ?", (provider, key))
                state, result = row.fetchone()
                if state == _DONE and result:
                    out.recorded[key] = _load(result)
                else:
                    out.in_flight.append(key)
        return out

    def known(self, provider: str, keys: Sequence[str]) -> Claim:
        """What the journal holds of ``keys``, claiming none: accepted ones and ones in flight.

        ``send_many`` looks a window of keys up with this, then claims each request's keys
        (:meth:`begin`) only as a worker takes it, so a crash leaves in flight only what
        the workers held.
        """
        out = Claim()
        unique = list(dict.fromkeys(keys))
        with self.inbox.transaction() as execute:
            for i in range(0, len(unique), _LOOKUP_BATCH):
                batch = unique[i : i + _LOOKUP_BATCH]
                marks = ", ".join("?" * len(batch))  # placeholders only: every value is a parameter
                sql = f"SELECT key, state, result FROM sends WHERE provider = ? AND key IN ({marks})"  # noqa: S608
                rows = execute(sql, (provider, *batch)).fetchall()
                for key, state, result in rows:
                    if state == _DONE and result:
                        out.recorded[str(key)] = _load(result)
                    else:
                        out.in_flight.append(str(key))
        return out

    def finish(self, provider: str, results: Sequence[RecipientResult]) -> None:
        """Record each key's outcome: accepted is kept, in doubt stays in flight, not sent is released."""
        now = self.inbox.clock.now().timestamp()
        with self.inbox.transaction() as execute:
            for r in results:
                if not r.key:
                    continue
                if r.accepted or (r.message_id and not r.in_doubt):
                    execute(
                        "UPDATE sends SET state = ?, result = ?, updated_at = ? WHERE provider = ? AND key = ?",
                        (_DONE, _dump(r), now, provider, r.key),
                    )
                elif r.in_doubt:
                    execute("UPDATE sends SET updated_at = ? WHERE provider = ? AND key = ?", (now, provider, r.key))
                else:
                    execute("DELETE FROM sends WHERE provider = ? AND key = ?", (provider, r.key))

    def in_flight(self, provider: str, *, older_than: timedelta = timedelta(0)) -> list[str]:
        """Keys claimed without an outcome (crashed or in doubt), oldest first: ``smsrelay reconcile``'s work."""
        horizon = (self.inbox.clock.now() - older_than).timestamp()
        with self.inbox.transaction() as execute:
            rows = execute(
                "SELECT key FROM sends WHERE provider = ? AND state = ? AND updated_at <= ? ORDER BY updated_at, key",
                (provider, _PENDING, horizon),
            ).fetchall()
        return [str(r[0]) for r in rows]
