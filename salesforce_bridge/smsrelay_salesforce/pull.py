"""Pull: write delivery reports, replies, link hits and opt-outs back into Salesforce.

It reads the unified event feed (``Client.events``) from the bridge's durable
cursor, folds a window of events into one write per record, and writes them as
idempotent upserts by External ID:

* a delivery report updates ``SMS_Message__c`` by ``Provider_Message_Id__c``, under
  the lifecycle merge rule (a late ``sent`` never overwrites ``delivered``);
* a reply becomes an inbound ``SMS_Message__c`` keyed by its event id, linked to the
  outbound message it answers and to the Contact or Lead with that mobile number;
* a link hit becomes an ``SMS_Link_Hit__c`` keyed by its event id;
* an opt-out or a STOP reply sets ``SMS_Consent__c`` for that phone.

The cursor advances only after Salesforce confirmed the writes, so a crash replays
the window, and replaying changes nothing.

The window is streamed, not held: each page of events is folded into a table of the
state file's connection (:meth:`State.stage`), and the folded writes are read back and
written in chunks of :data:`WRITE_CHUNK` records. The bridge's memory is one page and
one chunk, whatever the number of events or ``limits.pull_window``.

>>> Puller(org, client, config, state).run(Summary())  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from smsrelay import (
    Client,
    Delivery,
    InvalidRequest,
    LinkHit,
    OptOut,
    Reply,
    Status,
    normalize_phone,
    precedence,
    supersedes,
)
from smsrelay_salesforce.config import BridgeConfig
from smsrelay_salesforce.org import Org, parse_datetime
from smsrelay_salesforce.push import DELIVERY_PICKLIST
from smsrelay_salesforce.state import Applied, Staged, State
from smsrelay_salesforce.summary import Summary

__all__ = ["STOP_WORDS", "WRITE_CHUNK", "Puller", "Window"]

log = logging.getLogger("smsrelay.salesforce.pull")

# The opt-out keywords carriers honour (https://help.twilio.com/articles/223134027: STOP, STOPALL,
# UNSUBSCRIBE, CANCEL, END, QUIT), plus REMOVE and OPTOUT, which Salesforce SMS vendors add.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REMOVE", "OPTOUT", "OPT-OUT"})
# Delivery_Status__c picklist value -> core status ("Pending" is no report yet).
PICKLIST_STATUS: dict[str, Status] = {v: s for s, v in DELIVERY_PICKLIST.items()}
# OptOut.source -> SMS_Consent__c.Opt_Out_Source__c picklist value.
CONSENT_SOURCE: dict[str, str] = {"reply": "Reply", "link": "Link", "link_hit": "Link", "sms_inbound": "Reply"}

Progress = Callable[[str, int, int], None]
# Records written per chunk of a window: large enough that a window above the Bulk threshold
# (2,000 by default) is still written by Bulk jobs, small enough to keep memory flat.
WRITE_CHUNK = 5_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class _Report(NamedTuple):
    """The parts of a delivery report the write needs: a window holds thousands of these."""

    status: Status
    occurred_at: datetime
    event_id: str
    message_id: str | None
    message_ref: str | None
    raw_status: str | None
    reason: str | None
    parts: int | None

    @classmethod
    def of(cls, d: Delivery) -> _Report:
        return cls(d.status, d.occurred_at, d.event_id, d.message_id, d.message_ref, d.raw_status, d.reason, d.parts)

    def dump(self) -> bytes:
        # A tuple of plain values: pickling the enum and the datetime themselves costs ten times more,
        # and a window may stage a million of these.
        return pickle.dumps((self.status.value, _micros(self.occurred_at), *self[2:]))

    @classmethod
    def load(cls, body: bytes) -> _Report:
        # Safe: rows stage() wrote in this process, in a TEMP table no other connection can open.
        status, micros, *rest = pickle.loads(body)  # noqa: S301
        return cls(Status(status), _EPOCH + micros * _US, *rest)

    def wins_over(self, other: _Report | None) -> bool:
        # The lifecycle's one merge rule (smsrelay.lifecycle.precedence), on the compact form.
        if other is None:
            return True
        return precedence(self.status, self.occurred_at, self.event_id) > precedence(
            other.status, other.occurred_at, other.event_id
        )


@dataclass
class Window:
    """Events folded into one pending write per record."""

    deliveries: dict[str, _Report] = field(default_factory=dict)
    replies: dict[str, Reply] = field(default_factory=dict)
    hits: dict[str, LinkHit] = field(default_factory=dict)
    opt_outs: dict[str, OptOut | Reply] = field(default_factory=dict)
    events: int = 0

    def size(self) -> int:
        return len(self.deliveries) + len(self.replies) + len(self.hits) + len(self.opt_outs)

    def add(self, event: Any) -> None:
        self.events += 1
        if isinstance(event, Delivery):
            key = event.message_id or event.message_ref or event.event_id
            report = _Report.of(event)
            if report.wins_over(self.deliveries.get(key)):
                self.deliveries[key] = report
            return
        # The raw payload is never written to Salesforce: drop it, so a window stays small.
        if getattr(event, "raw", None):
            event = replace(event, raw={})
        if isinstance(event, Reply):
            self.replies[event.event_id] = event
            if event.text.strip().upper() in STOP_WORDS:
                self._opt_out(event)
        elif isinstance(event, LinkHit):
            self.hits[event.event_id] = event
        elif isinstance(event, OptOut):
            self._opt_out(event)

    def _opt_out(self, event: OptOut | Reply) -> None:
        # One consent write per phone: the earliest opt-out wins, so a replay picks the same one.
        old = self.opt_outs.get(event.phone)
        if old is None or (event.occurred_at, event.event_id) < (old.occurred_at, old.event_id):
            self.opt_outs[event.phone] = event

    @classmethod
    def of_staged(cls, rows: Iterable[tuple[str, bytes]]) -> Window:
        """A chunk of a staged window (:func:`stage`), as the in-memory window :meth:`Puller.apply` writes."""
        window = cls()
        for kind, body in rows:
            if kind == "delivery":
                report = _Report.load(body)
                window.deliveries[report.message_id or report.message_ref or report.event_id] = report
                continue
            # Safe: rows stage() wrote in this process, in a TEMP table no other connection can open.
            item = pickle.loads(body)  # noqa: S301
            if kind == "reply":
                window.replies[item.event_id] = item
            elif kind == "hit":
                window.hits[item.event_id] = item
            else:
                window.opt_outs[item.phone] = item
        return window


def stage(state: State, events: Iterable[Any]) -> int:
    """Fold ``events`` into the state's staged window, under the same rules as :meth:`Window.add`;
    return how many were read.

    Deliveries keep the report that wins the lifecycle merge (:func:`smsrelay.precedence`);
    an opt-out per phone keeps the earliest; replies and link hits are keyed by event id.
    """
    newest: list[Staged] = []
    earliest: list[Staged] = []
    n = 0
    for event in events:
        n += 1
        if isinstance(event, Delivery):
            final, at, progress, eid = precedence(event.status, event.occurred_at, event.event_id)
            key = event.message_id or event.message_ref or event.event_id
            newest.append(("delivery", key, (int(final), _micros(at), progress, eid), _Report.of(event).dump()))
            continue
        if getattr(event, "raw", None):
            event = replace(event, raw={})  # never written to Salesforce: not kept
        order = (0, _micros(event.occurred_at), 0, event.event_id)
        if isinstance(event, Reply):
            body = pickle.dumps(event)
            newest.append(("reply", event.event_id, order, body))
            if event.text.strip().upper() in STOP_WORDS:
                earliest.append(("opt_out", event.phone, order, body))
        elif isinstance(event, LinkHit):
            newest.append(("hit", event.event_id, order, pickle.dumps(event)))
        elif isinstance(event, OptOut):
            earliest.append(("opt_out", event.phone, order, pickle.dumps(event)))
    state.stage(newest, keep="max")
    state.stage(earliest, keep="min")
    return n


def _micros(dt: datetime) -> int:
    # Whole microseconds since the epoch: exact, where a float timestamp rounds.
    return (dt - _EPOCH) // _US


def _ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


class Puller:
    """The pull half of a sync (see the module docs). ``write_chunk`` is the records written per chunk."""

    def __init__(
        self,
        org: Org,
        client: Client,
        config: BridgeConfig,
        state: State,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        cursor_name: str = "events",
        write_chunk: int = WRITE_CHUNK,
    ) -> None:
        self.org = org
        self.client = client
        self.config = config
        self.state = state
        self.dry_run = dry_run
        self.progress = progress
        self.cursor_name = cursor_name
        self.write_chunk = max(1, write_chunk)
        self.m = config.mapping.message

    def run(self, summary: Summary) -> Summary:
        """Drain the feed window by window; each window's cursor is saved after its writes."""
        cursor = self.state.cursor(self.cursor_name)
        limits = self.config.limits
        while True:
            self.org.check_budget()
            self.state.clear_staged()
            events = 0
            more = True
            new_cursor = cursor
            while self.state.staged_count() < limits.pull_window:
                page = self.client.events(since=new_cursor, limit=limits.event_page)
                events += stage(self.state, page)
                new_cursor = page.cursor
                more = bool(page.more) and len(page) > 0
                if self.progress:
                    self.progress("events", summary.events + events, 0)
                if not more:
                    break
            summary.events += events
            if events == 0:
                return summary
            failed = summary.event_write_failed
            self.write_staged(summary)
            if self.dry_run:
                return summary
            if summary.event_write_failed > failed:
                # Salesforce refused some writes for good (e.g. a validation rule): keep the
                # cursor, so they are tried again next run once fixed; no event is dropped.
                summary.errors.append("the event cursor was not advanced; the refused writes are retried next run")
                return summary
            self.state.set_cursor(self.cursor_name, new_cursor)
            cursor = new_cursor
            if not more:
                return summary

    def replay(self, events: Iterable[Any], summary: Summary) -> None:
        """Apply a given batch of events (no cursor involved): e.g. a backfill."""
        self.state.clear_staged()
        it = iter(events)
        while page := list(itertools.islice(it, self.config.limits.event_page)):
            summary.events += stage(self.state, page)
        self.write_staged(summary)

    def write_staged(self, summary: Summary) -> None:
        """Write the staged window chunk by chunk, remembering each chunk's writes as it goes.

        Raises (and the cursor stays) if a call fails after retries; the chunks already
        written are written again by the replay, which changes nothing."""
        try:
            size = self.state.staged_count()
            threshold = self.config.limits.bulk_threshold
            # A window above the Bulk threshold is written in chunks above it too, so by Bulk jobs.
            chunk = max(self.write_chunk, threshold + 1) if size > threshold else self.write_chunk
            for rows in self.state.staged_chunks(chunk):
                applied = self.apply(Window.of_staged(rows), summary)
                if not self.dry_run:
                    self.state.remember(applied)
        finally:
            self.state.clear_staged()

    # -- one window -------------------------------------------------------------------
    def apply(self, window: Window, summary: Summary) -> list[Applied]:
        """Write one window. Raises (and the cursor stays) if a call fails after retries."""
        self.org.phase = "deliveries"
        known = self._resolve(
            set(window.deliveries)
            | {e.in_reply_to for e in window.replies.values() if e.in_reply_to}
            | {e.message_id for e in window.hits.values() if e.message_id},
            {e.message_ref for e in window.deliveries.values() if e.message_ref}
            | {e.message_ref for e in window.hits.values() if e.message_ref}
            | {e.message_ref for e in window.replies.values() if e.message_ref},
        )
        applied = self._deliveries(window, known, summary)
        self.org.phase = "inbound"
        self._replies(window, known, summary)
        self._hits(window, known, summary)
        self._consents(window, summary)
        return applied

    def _resolve(self, message_ids: set[str], refs: set[str]) -> dict[str, Applied]:
        """What the bridge knows of these messages: its state file first, the org for the rest.

        Keyed by provider message id, and by send key as ``ref:<key>``."""
        ids = sorted(i for i in message_ids if i)
        known = self.state.applied(ids)
        f = self.m.f
        cols = ["Id", f("provider_message_id"), f("send_key"), f("delivery_status"), f("delivery_updated_at")]
        cols += [f("phone"), f("sender")]
        missing = [i for i in ids if i not in known]
        for row in self.org.select_in(cols, self.m.object, f("provider_message_id"), missing):
            a = self._row(row)
            known[a.message_id] = a
        out = dict(known)
        for a in known.values():
            if a.send_key:
                out[f"ref:{a.send_key}"] = a
        by_key = self.state.by_keys(sorted(r for r in refs if f"ref:{r}" not in out))
        for k, a in by_key.items():
            out[f"ref:{k}"] = a
        rest = sorted(r for r in refs if f"ref:{r}" not in out)
        for row in self.org.select_in(cols, self.m.object, f("send_key"), rest):
            a = self._row(row)
            out[f"ref:{a.send_key}"] = a
            if a.message_id:
                out.setdefault(a.message_id, a)
        return out

    def _row(self, row: dict[str, Any]) -> Applied:
        f = self.m.f
        return Applied(
            message_id=row.get(f("provider_message_id")) or "",
            sf_id=row["Id"],
            send_key=row.get(f("send_key")),
            phone=row.get(f("phone")),
            sender=row.get(f("sender")),
            status=row.get(f("delivery_status")),
            at=parse_datetime(row.get(f("delivery_updated_at"))),
        )

    # -- deliveries -------------------------------------------------------------------------
    def _deliveries(self, window: Window, known: dict[str, Applied], summary: Summary) -> list[Applied]:
        f = self.m.f
        by_ext: list[dict[str, Any]] = []
        by_id: list[dict[str, Any]] = []
        applied: list[Applied] = []
        for key, d in window.deliveries.items():
            cur = known.get(key) or (known.get(f"ref:{d.message_ref}") if d.message_ref else None)
            if cur is None:
                summary.unmatched += 1
                continue
            at = _ms(d.occurred_at)
            old = PICKLIST_STATUS.get(cur.status or "")
            if not supersedes(d.status, at, old, cur.at):
                summary.deliveries_unchanged += 1
                continue
            rec: dict[str, Any] = {
                f("delivery_status"): DELIVERY_PICKLIST[d.status],
                f("delivery_updated_at"): at,
            }
            if self.m.has("delivery_raw_status"):
                rec[f("delivery_raw_status")] = (d.raw_status or "")[:64] or None
            if d.status is Status.DELIVERED:
                rec[f("delivered_at")] = at
            if not d.status.ok:
                rec[f("error_code")] = (d.raw_status or d.status.value.upper())[:64]
                rec[f("error_message")] = (d.reason or d.status.value)[:255]
            if d.parts:
                rec[f("parts")] = d.parts
            mid = d.message_id or cur.message_id
            if cur.message_id and mid == cur.message_id:
                rec[f("provider_message_id")] = mid
                by_ext.append(rec)
            else:
                # Known only by its send key (a crash before the write-back): set the id too.
                rec["Id"] = cur.sf_id
                if mid:
                    rec[f("provider_message_id")] = mid
                by_id.append(rec)
            status = rec[f("delivery_status")]
            applied.append(Applied(mid or key, cur.sf_id, cur.send_key, cur.phone, cur.sender, status, at))
        if self.dry_run:
            summary.deliveries_updated += len(by_ext) + len(by_id)
            return []
        ok_ids: set[str] = set()
        outcomes = self.org.write("upsert", self.m.object, by_ext, external_id=f("provider_message_id"))
        outcomes += self.org.write("update", self.m.object, by_id)
        for rec, o in zip([*by_ext, *by_id], outcomes, strict=True):
            if o.ok:
                summary.deliveries_updated += 1
                ok_ids.add(rec[f("provider_message_id")] if f("provider_message_id") in rec else rec["Id"])
            else:
                summary.event_write_failed += 1
                summary.errors.append(f"delivery status for {rec.get(f('provider_message_id'))}: {o.code} {o.message}")
        return [a for a in applied if a.message_id in ok_ids]

    # -- replies -------------------------------------------------------------------------------
    def _replies(self, window: Window, known: dict[str, Applied], summary: Summary) -> None:
        if not window.replies:
            return
        f = self.m.f
        replies = sorted(window.replies.values(), key=lambda r: (r.occurred_at, r.event_id))
        people = self._people({r.phone for r in replies})
        # Unthreaded replies: the latest outbound to that phone from that sender.
        loose = [r for r in replies if not self._thread(r, known)]
        latest = self._latest_outbound({r.phone for r in loose}) if loose else {}
        records: list[dict[str, Any]] = []
        for r in replies:
            parent = self._thread(r, known)
            parent_id = parent.sf_id if parent else None
            if parent_id is None:
                parent_id = latest.get((r.phone, r.to or "")) or latest.get((r.phone, ""))
            rec: dict[str, Any] = {
                f("event_id"): r.event_id,
                f("direction"): "Inbound",
                f("status"): "Received",
                f("phone"): r.phone,
                f("body"): r.text,
                f("sender"): (r.to or None),
                f("received_at"): _ms(r.occurred_at),
                f("provider"): r.provider,
                f("in_reply_to"): parent_id,
                f("contact"): people.get(("Contact", r.phone)),
                f("lead"): people.get(("Lead", r.phone)),
            }
            if self.m.has("from"):
                rec[f("from")] = r.phone
            records.append(rec)
        summary.replies += self._upsert(self.m.object, records, f("event_id"), "reply", summary)

    @staticmethod
    def _thread(r: Reply, known: dict[str, Applied]) -> Applied | None:
        if r.in_reply_to and r.in_reply_to in known:
            return known[r.in_reply_to]
        if r.message_ref and f"ref:{r.message_ref}" in known:
            return known[f"ref:{r.message_ref}"]
        return None

    def _latest_outbound(self, phones: set[str]) -> dict[tuple[str, str], str]:
        f = self.m.f
        out: dict[tuple[str, str], tuple[str, str]] = {}
        rows = self.org.select_in(
            ["Id", f("phone"), f("sender"), f("sent_at")],
            self.m.object,
            f("phone"),
            sorted(phones),
            where=f"{f('direction')} = 'Outbound' AND {f('sent_at')} != null",
        )
        for row in rows:
            phone, sender = str(row.get(f("phone"))), str(row.get(f("sender")) or "")
            at = str(row.get(f("sent_at")) or "")
            for key in ((phone, sender), (phone, "")):
                if key not in out or at > out[key][0]:
                    out[key] = (at, row["Id"])
        return {k: v[1] for k, v in out.items()}

    def _people(self, phones: set[str]) -> dict[tuple[str, str], str]:
        """Contact and Lead ids whose mobile number, normalised, is one of ``phones``.

        Phone fields are free text ("(02) 9999 0156"), so candidates are found by their
        last three digits and compared after normalising; ties go to the oldest Id."""
        out: dict[tuple[str, str], str] = {}
        region = self.config.send.country or self.client.settings.default_region
        tails = sorted({p[-3:] for p in phones if len(p) > 3})
        from simple_salesforce.format import format_soql

        person = self.config.mapping.person
        mobile = person.mobile
        for obj in person.objects:
            if not tails:
                break
            head = f"SELECT Id, {mobile} FROM {obj} WHERE "
            clauses = [format_soql(f"{mobile} LIKE '%{{:like}}'", t) for t in tails]
            for i in range(0, len(clauses), 250):
                soql = head + " OR ".join(clauses[i : i + 250]) + " ORDER BY Id"
                for row in self.org.query_iter(soql):
                    try:
                        phone = normalize_phone(str(row.get(mobile) or ""), region)
                    except InvalidRequest:
                        continue
                    if phone in phones:
                        out.setdefault((obj, phone), row["Id"])
        return out

    # -- link hits ---------------------------------------------------------------------------------
    def _hits(self, window: Window, known: dict[str, Applied], summary: Summary) -> None:
        if not window.hits:
            return
        lf = self.config.mapping.link_hit
        records: list[dict[str, Any]] = []
        for h in sorted(window.hits.values(), key=lambda e: (e.occurred_at, e.event_id)):
            parent = known.get(h.message_id or "") or (known.get(f"ref:{h.message_ref}") if h.message_ref else None)
            if parent is None or not parent.sf_id:
                # The link hit's master record is unknown: a message this org did not send.
                summary.unmatched += 1
                continue
            rec: dict[str, Any] = {
                lf.f("event_id"): h.event_id,
                lf.f("message"): parent.sf_id,
                lf.f("url"): h.url,
                lf.f("hit_at"): _ms(h.occurred_at),
            }
            if lf.has("phone"):
                rec[lf.f("phone")] = h.phone
            records.append(rec)
        summary.link_hits += self._upsert(lf.object, records, lf.f("event_id"), "link hit", summary)

    def _upsert(self, obj: str, records: list[dict[str, Any]], external_id: str, what: str, summary: Summary) -> int:
        """Upsert event records by External ID; return how many were written, and report each refused one.

        Idempotent: replaying the same events upserts the same keys and changes nothing.
        """
        if self.dry_run or not records:
            return len(records)
        written = 0
        outcomes = self.org.write("upsert", obj, records, external_id=external_id)
        for rec, o in zip(records, outcomes, strict=True):
            if o.ok:
                written += 1
            else:
                summary.event_write_failed += 1
                summary.errors.append(f"{what} {rec[external_id]}: {o.code} {o.message}")
        return written

    # -- consent ------------------------------------------------------------------------------------
    def _consents(self, window: Window, summary: Summary) -> None:
        if not window.opt_outs:
            return
        c = self.config.mapping.consent
        # The consent belongs to the person as well as the number: link it to the Contact or
        # Lead with that mobile (as a reply is linked), and set their opt-out flag below.
        people = self._people(set(window.opt_outs))
        records: list[dict[str, Any]] = []
        for phone, e in sorted(window.opt_outs.items()):
            if isinstance(e, OptOut):
                source = CONSENT_SOURCE.get(e.source.lower(), "Provider")
                keyword = e.text
            else:
                source, keyword = "Reply", e.text
            rec: dict[str, Any] = {
                c.f("phone"): phone,
                c.f("opted_out"): True,
                c.f("source"): source,
                c.f("opted_out_at"): _ms(e.occurred_at),
            }
            if c.has("keyword"):
                rec[c.f("keyword")] = (keyword or "").strip()[:64] or None
            if c.has("event_id"):
                rec[c.f("event_id")] = e.event_id
            for obj, logical in (("Contact", "contact"), ("Lead", "lead")):
                if c.has(logical) and (obj, phone) in people:
                    rec[c.f(logical)] = people[(obj, phone)]
            records.append(rec)
        summary.opt_outs += self._upsert(c.object, records, c.f("phone"), "opt-out of", summary)
        self._flag_people(people, summary)

    def _flag_people(self, people: dict[tuple[str, str], str], summary: Summary) -> None:
        """Set the opt-out flag on each Contact and Lead that opted out (one update per object)."""
        flag = self.config.mapping.person.opt_out
        if not flag or self.dry_run:
            return
        by_obj: dict[str, list[dict[str, Any]]] = {}
        for (obj, _phone), record_id in sorted(people.items()):
            by_obj.setdefault(obj, []).append({"Id": record_id, flag: True})
        for obj, updates in by_obj.items():
            for rec, o in zip(updates, self.org.write("update", obj, updates, bulk=False), strict=True):
                if not o.ok:
                    summary.event_write_failed += 1
                    summary.errors.append(f"opt-out flag on {obj} {rec['Id']}: {o.code} {o.message}")
