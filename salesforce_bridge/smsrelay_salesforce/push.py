"""Push: send what Salesforce records ask for, and write the outcome back.

One run: reconcile records a crash left in ``Sending`` (ask the provider by the
send key; never send blind), then query the due records with the configured
filter, claim them (``Queued → Sending`` with ``Send_Key__c`` and attempts) in
sObject Collections updates before any SMS goes out, send through the core
client with the send key as the idempotency key, and write back the provider
message id, status, parts and errors (Collections, or Bulk API 2.0 above the
threshold). An opted-out number is skipped and an invalid number rejected, record
by record; the rest of the batch goes on.

>>> Pusher(org, client, config, state).run(Summary())  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from jinja2 import nodes

from smsrelay import (
    AmbiguousSend,
    AuthError,
    Client,
    InsufficientCredit,
    InvalidRequest,
    Message,
    Recipient,
    RecipientResult,
    Router,
    SmsRelayError,
    Status,
    compile_template,
    normalize_phone,
    redact,
    render_template,
)
from smsrelay_salesforce.config import BridgeConfig
from smsrelay_salesforce.org import CollectionWrite, Org, RecordOutcome, soql_datetime
from smsrelay_salesforce.state import Applied, State
from smsrelay_salesforce.summary import Summary

__all__ = ["DELIVERY_PICKLIST", "HANDOFF", "Pusher", "relationship_name", "template_fields"]

log = logging.getLogger("smsrelay.salesforce.push")

# The hand-off status (Status__c) a send result leaves the record in. UNKNOWN is absent
# on purpose: such a record stays Sending and is reconciled on the next run.
HANDOFF: dict[Status, str] = {
    Status.SCHEDULED: "Sent",
    Status.QUEUED: "Sent",
    Status.SENT: "Sent",
    Status.DELIVERED: "Sent",
    Status.REJECTED: "Rejected",
    Status.FAILED: "Failed",
    Status.EXPIRED: "Failed",
    Status.CANCELLED: "Cancelled",
}
# Core status -> Delivery_Status__c picklist value (metadata: SMS_Message__c.Delivery_Status__c).
DELIVERY_PICKLIST: dict[Status, str] = {s: s.value.capitalize() for s in Status}

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


def template_fields(source: str) -> set[str]:
    """The record fields a body template reads, as SOQL paths.

    >>> sorted(template_fields("Hi {{ Contact__r.FirstName }}, {{ Body__c }}"))
    ['Body__c', 'Contact__r.FirstName']
    """
    found: set[str] = set()

    def path(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Name):
            return node.name
        if isinstance(node, nodes.Getattr):
            inner = path(node.node)
            return f"{inner}.{node.attr}" if inner else None
        return None

    ast = compile_template(source).environment.parse(source)
    for node in ast.find_all((nodes.Getattr, nodes.Name)):
        p = path(node)
        if p and p.split(".")[0] not in ("loop", "range", "true", "false", "none"):
            found.add(p)
    # Keep only the longest paths: "Contact__r" alone is not a column.
    return {p for p in found if not any(q.startswith(p + ".") for q in found) and p[0].isupper()}


def relationship_name(lookup: str) -> str:
    """The SOQL relationship of a lookup field: ``Contact__c`` -> ``Contact__r``, ``ContactId`` -> ``Contact``.

    >>> relationship_name("Lead__c"), relationship_name("WhoId")
    ('Lead__r', 'Who')
    """
    if lookup.endswith("__c"):
        return lookup[:-3] + "__r"
    return lookup.removesuffix("Id")


def _path_value(record: Mapping[str, Any], path: str) -> Any:
    """A field of a (flattened) record by its SOQL path; None when a relationship on the way is empty."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as template variables: an empty field renders as "", not "None"; an empty
    relationship stays None, so reading through it is a template error for that record."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k == "attributes":
            continue
        if isinstance(v, Mapping):
            out[k] = _flat(v)
        else:
            out[k] = "" if v is None and not k.endswith("__r") else v
    return out


@dataclass
class _Ended:
    """The claimer's last word: whether rows may remain, or why it stopped."""

    more: bool = False
    error: BaseException | None = None


@dataclass
class _Outcomes:
    """A write-back composed: record updates, and the jobs requeued or left for review."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    written: list[tuple[_Job, RecipientResult, datetime]] = field(default_factory=list)
    unsent: list[tuple[_Job, RecipientResult]] = field(default_factory=list)
    doubtful: list[_Job] = field(default_factory=list)
    # Updates (by index) with a value their field cannot take, found as each send lands, so
    # the write-back's values need no checking after the last send.
    refused: dict[int, RecordOutcome] = field(default_factory=dict)
    # The state file's row for each written one with a message id, also built as each send lands.
    applied: list[Applied] = field(default_factory=list)

    def extend(self, other: _Outcomes) -> None:
        self.refused.update({len(self.updates) + i: o for i, o in other.refused.items()})
        self.updates += other.updates
        self.written += other.written
        self.applied += other.applied
        self.unsent += other.unsent
        self.doubtful += other.doubtful


@dataclass
class _Job:
    """One due record on its way through the run."""

    id: str
    record: dict[str, Any]
    attempts: int
    key: str
    phone: str | None = None
    body: str | None = None
    sender: str | None = None
    outcome: str | None = None  # Rejected / Skipped_Opted_Out before sending
    error_code: str | None = None
    error: str | None = None


# A claim the reader readied: its write, and the job each of its records is for.
_Claim = tuple[CollectionWrite, list[_Job]]
# A batch the reader readied for the claimer: its jobs, and their claim (None: nothing to write).
_Batch = tuple[list[_Job], _Claim | None]


class Pusher:
    """The push half of a sync (see the module docs)."""

    def __init__(
        self,
        org: Org,
        client: Client,
        config: BridgeConfig,
        state: State,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        router: Router | None = None,
    ) -> None:
        self.org = org
        self.client = client
        # A routing config: each record goes through its route's account (failover only on a
        # definite refusal); ``account`` names the account that sent each send key.
        self.router = router
        self.account: dict[str, str] = {}
        self.config = config
        self.state = state
        self.dry_run = dry_run
        self.progress = progress
        self.m = config.mapping.message
        self.clock = client.provider.clock
        self._consents: set[str] | None = None
        self._consent_read: Future[set[str] | None] | None = None
        self._left: Future[list[dict[str, Any]]] | None = None
        self._due: Future[Iterator[dict[str, Any]]] | None = None
        self._begun: list[Future[Any]] | None = None
        self._refused: list[_Job] = []

    # -- the query -------------------------------------------------------------------
    def select_fields(self) -> list[str]:
        f = self.m.f
        fields = ["Id", *self.m.paths("to"), f("body"), f("sender"), f("attempts"), f("send_key"), f("status")]
        fields += [f("phone"), *self.person_opt_out_paths().values()]
        fields += sorted(template_fields(self.config.send.template))
        if self.config.send.users:
            fields.append(self.config.send.user_field)
        return list(dict.fromkeys(fields))

    def person_opt_out_paths(self) -> dict[str, str]:
        """Person object -> the SOQL path of its opt-out flag from a message (``Contact__r.SMS_Opt_Out__c``)."""
        person = self.config.mapping.person
        if not person.opt_out:
            return {}
        return {
            obj: f"{relationship_name(self.m.f(logical))}.{person.opt_out}"
            for obj, logical in (("Contact", "contact"), ("Lead", "lead"))
            if obj in person.objects and self.m.has(logical)
        }

    def due_query(self) -> str:
        soql = self._select_due() + " ORDER BY Id"
        if self.config.send.max_per_run:
            soql += f" LIMIT {self.config.send.max_per_run}"
        return soql

    def probe_query(self) -> str:
        """The due query with ``LIMIT 0``: Salesforce checks every field it names, returns nothing.

        >>> Pusher(org, client, config, state).probe_query()  # doctest: +SKIP
        "SELECT Id, To__c, ... FROM SMS_Message__c WHERE Status__c = 'Queued' AND ... LIMIT 0"
        """
        return self._select_due() + " LIMIT 0"

    def _select_due(self) -> str:
        where = self.config.send.where.replace("{now}", soql_datetime(self.clock.now()))
        return f"SELECT {', '.join(self.select_fields())} FROM {self.m.object} WHERE {where}"

    def _chunks(self, rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.config.limits.send_chunk:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    # -- the run ------------------------------------------------------------------------
    def run(self, summary: Summary) -> Summary:
        """Reconcile, then send every due record; count into ``summary``."""
        summary.dry_run = self.dry_run
        reads = self.begin()
        try:
            self.reconcile(summary)
        finally:
            wait(reads)  # the org is this thread's again
        due, self._due = self._due, None
        rows = due.result() if due is not None else self.org.query_iter(self.due_query())
        while self._round(rows, summary):
            # A full round: start another only if a row is left (not to spin up a round for none).
            first = next(rows, None)
            if first is None:
                break
            rows = itertools.chain([first], rows)
        return summary

    def begin(self) -> list[Future[Any]]:
        """Start the three reads a run opens with, at once and in the background: the records a
        crash left in Sending, the opt-out list, and the due query's first page. The bridge calls
        this before its checks, so all share one round trip; :meth:`run` waits for them (and
        calls it if nobody did). The due query names only records the checks and the reconcile
        do not change (``send.where`` picks due ones; the claim moves them out of it), so reading
        it first changes nothing but when; a record the reconcile puts back in Queued waits for
        the next run.
        """
        if self._begun is None:
            self.org.connect()  # signed in here, once: not by two threads at a time
            pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="smsrelay-sf-begin")
            self._consent_read = pool.submit(self._read_as, "claim", self._all_opted_out)
            self._left = pool.submit(self._read_as, "reconcile", self._left_in_sending)
            self._due = pool.submit(self._read_as, "claim", lambda: self.org.query_start(self.due_query()))
            pool.shutdown(wait=False)
            self._begun = [self._consent_read, self._left, self._due]
        return self._begun

    def _read_as(self, phase: str, read: Callable[[], T]) -> T:
        self.org.phase_here(phase)
        return read()

    def _left_in_sending(self) -> list[dict[str, Any]]:
        f = self.m.f
        fields = ", ".join(self.select_fields())
        soql = f"SELECT {fields} FROM {self.m.object} WHERE {f('status')} = 'Sending' ORDER BY Id"
        return list(self.org.query_iter(soql))

    def _round(self, rows: Iterator[dict[str, Any]], summary: Summary) -> bool:
        """Up to ``limits.send_chunk`` due records, pipelined in three threads: a reader pages
        through the due query and prepares a batch (``limits.batch_size``) at a time, two
        batches ahead of the claims on the wire at most; a claimer claims each in one
        Collections call, handing a claimed batch on once the next claim is on the wire, two
        claimed batches ahead at most (three, with the one it holds); this thread sends what is
        claimed as soon as a few full provider requests are ready, then writes back once.
        Returns whether more rows may follow.

        Only this thread sends, and only jobs whose claim Salesforce confirmed. The write-back
        starts after the reader and the claimer have ended.
        """
        ahead: queue.Queue[list[_Job] | _Ended] = queue.Queue(maxsize=2)
        side = Summary(dry_run=self.dry_run)  # the claimer's counts, folded in after it ends
        stop = threading.Event()
        batches: queue.Queue[_Batch | _Ended] = queue.Queue()
        room = threading.Semaphore(2)  # the reader's batches whose claim is not on the wire yet: two at most
        read = threading.Thread(
            target=self._read, args=(rows, batches, room, stop), name="smsrelay-sf-read", daemon=True
        )

        # The reader and this thread are let go when a claim is on the wire, not when the claimer
        # takes it: their work then overlaps Salesforce's answer instead of holding the interpreter
        # lock while the claimer writes its request (each wait for it costs up to 5 ms a claim).
        def claimer() -> None:
            ended = _Ended()
            held: list[list[_Job]] = []  # the last claim's jobs, passed on once the next one is out

            def pass_on() -> None:
                while held:
                    ahead.put(held.pop())

            try:
                while True:
                    if batches.empty():
                        pass_on()  # no claim ready to overlap with
                    item = batches.get()
                    if isinstance(item, _Ended):
                        ended = item
                        break
                    if stop.is_set():
                        room.release()
                        continue  # read to the end, claim nothing more
                    left = [room.release, pass_on]

                    def sent(left: list[Callable[[], None]] = left) -> None:
                        while left:
                            left.pop(0)()

                    try:
                        self.org.check_budget()
                        jobs, claim_write = item
                        side.due += len(jobs)
                        kept = self._stage(jobs, side, claim=True, ready=True, prepared=claim_write, sent=sent)
                    finally:
                        sent()  # not sent (nothing to claim, or it failed first): let go now
                    held.append(kept)
            except BaseException as exc:  # handed to the sending thread, which raises it
                ended.error = exc
                stop.set()
                _drain(batches, room.release)
            finally:
                read.join()
                pass_on()
                ahead.put(ended)

        thread = threading.Thread(target=claimer, name="smsrelay-sf-claim", daemon=True)
        self.org.phase = "claim"
        read.start()
        thread.start()
        # A send of several full requests at once (up to a quarter of the provider's concurrency,
        # at most 8): one send_many per batch would cost its own overhead on every claim.
        caps = self.client.capabilities
        workers = self.client.settings.concurrency or caps.concurrency
        full = max(1, caps.bulk_max) * max(1, min(workers // 4, 8))
        pending: dict[str | None, list[_Job]] = {}
        outcomes = _Outcomes()  # composed as each send lands, while the claimer waits on Salesforce
        ended: _Ended | None = None

        def send(group: list[_Job]) -> None:
            outcomes.extend(self._outcomes(group, self._send(group, summary, done=len(outcomes.written)), summary))

        try:
            while ended is None:
                item = ahead.get()
                if isinstance(item, _Ended):
                    ended = item
                    break
                for j in item:
                    pending.setdefault(j.sender, []).append(j)
                for sender in [s for s, g in pending.items() if len(g) >= full]:
                    send(pending.pop(sender))
            for group in list(pending.values()):  # claimed, so sent even if claiming stopped early
                pending.pop(group[0].sender)
                send(group)
        except BaseException as exc:
            stop.set()
            while ended is None:  # let the claimer finish its call and end
                item = ahead.get()
                if isinstance(item, _Ended):
                    ended = item
                else:
                    for j in item:
                        pending.setdefault(j.sender, []).append(j)
            thread.join()
            summary.add(side)
            if isinstance(exc, (AuthError, InsufficientCredit)):
                # Nothing of these went out: claims back to Queued; what was sent is written back.
                self._release([j for g in pending.values() for j in g] + self._refused, exc)
                self._apply(outcomes, summary)
            raise
        thread.join()
        summary.add(side)
        self._apply(outcomes, summary)
        if ended.error is not None:
            raise ended.error
        return ended.more

    def _job(self, record: dict[str, Any]) -> _Job:
        attempts = int(record.get(self.m.f("attempts")) or 0) + 1
        # The key names the record and the attempt: a record re-queued by an admin gets a
        # fresh key, while a crash mid-attempt keeps its key and is looked up, not resent.
        return _Job(id=record["Id"], record=_flat(record), attempts=attempts, key=f"sf-{record['Id']}-{attempts}")

    def _read(
        self,
        rows: Iterator[dict[str, Any]],
        batches: queue.Queue[_Batch | _Ended],
        room: threading.Semaphore,
        stop: threading.Event,
    ) -> None:
        """Up to ``limits.send_chunk`` rows of the due query, prepared a batch at a time for
        the claimer (one batch for each ``room``: the claimer frees one as each claim goes out),
        so the next query page and the next batch's preparing, and its claim's body, overlap the
        claims. Ends with ``_Ended``; an error is handed on in it."""
        limit = self.config.limits.send_chunk
        size = max(1, min(self.config.limits.batch_size, 200))
        ended = _Ended()
        taken = 0
        try:
            while not stop.is_set() and taken < limit:
                room.acquire()
                if stop.is_set():
                    break
                batch = list(itertools.islice(rows, min(size, limit - taken)))
                if not batch:
                    break
                taken += len(batch)
                jobs = [self._job(r) for r in batch]
                self._ready(jobs)
                updates, targets = self._claim_updates(jobs, claim=True)
                claim_write = None
                if updates and not self.dry_run:
                    claim_write = (self.org.prepare_collection("update", self.m.object, updates), targets)
                batches.put((jobs, claim_write))
            ended.more = taken >= limit
        except BaseException as exc:
            ended.error = exc
        finally:
            batches.put(ended)

    def _ready(self, jobs: list[_Job]) -> None:
        """Prepare, check consent and render: each job's outcome if it will not be sent."""
        for job in jobs:
            self._prepare(job)
        # Consent first: an opted-out number is skipped whatever else is wrong with its record.
        self._check_consent([j for j in jobs if j.outcome is None])
        for job in jobs:
            if job.outcome is None:
                self._render(job)

    def _stage(
        self,
        jobs: list[_Job],
        summary: Summary,
        *,
        claim: bool,
        ready: bool = False,
        prepared: _Claim | None = None,
        sent: Callable[[], None] | None = None,
    ) -> list[_Job]:
        """Prepare (unless ``ready``), check consent, render and claim (the ``prepared`` claim,
        if given; ``sent`` is called once it is on the wire); the jobs that may be sent."""
        if not ready:
            self._ready(jobs)
        jobs = self._claim(jobs, summary, claim=claim, prepared=prepared, sent=sent)
        for j in jobs:
            if j.outcome == "Rejected":
                summary.rejected += 1
            elif j.outcome == "Skipped_Opted_Out":
                summary.skipped_opted_out += 1
        return [j for j in jobs if j.outcome is None]

    def _process(self, jobs: list[_Job], summary: Summary, *, claim: bool) -> None:
        sendable = self._stage(jobs, summary, claim=claim)
        try:
            results = self._send(sendable, summary)
        except (AuthError, InsufficientCredit) as exc:
            self._release(self._refused, exc)
            raise
        self._write_back(sendable, results, summary)

    # -- preparing one record ------------------------------------------------------------
    def _prepare(self, job: _Job) -> None:
        rec = job.record
        user = self.config.send.users.get(str(rec.get(self.config.send.user_field) or ""))
        routing = self.config.routing
        default_region = routing.default_region if routing else self.client.settings.default_region
        country = (user.country if user else None) or self.config.send.country or default_region
        job.sender = (
            rec.get(self.m.f("sender"))
            or (user.sender if user else None)
            or self.config.send.sender
            # Routed, no sender is named here: each account sends from its own.
            or (None if routing else self.client.settings.sender)
        )
        # The first field of the fallback order that holds a number: e.g. the record's own
        # To__c, then its Contact's mobile, then its Lead's.
        raw = next((v for v in (_path_value(rec, p) for p in self.m.paths("to")) if v), "")
        try:
            job.phone = normalize_phone(str(raw), country)
        except InvalidRequest as exc:
            job.outcome, job.error_code, job.error = "Rejected", "INVALID_NUMBER", exc.message

    def _render(self, job: _Job) -> None:
        rec = job.record
        try:
            job.body = render_template(self.config.send.template, rec, recipient=job.phone)
        except InvalidRequest as exc:
            job.outcome, job.error_code, job.error = "Rejected", "TEMPLATE_ERROR", exc.message
            return
        if not job.body.strip():
            job.outcome, job.error_code, job.error = "Rejected", "EMPTY_BODY", "the message body is empty"

    def _check_consent(self, jobs: list[_Job]) -> None:
        """Skip a record when its number has an opt-out consent record, or its Contact or
        Lead has the opt-out flag set (an opt-out recorded on the person, by any channel)."""
        if not jobs:
            return
        opted = self._opted_out([j.phone for j in jobs if j.phone])
        person_paths = self.person_opt_out_paths()
        for j in jobs:
            if j.phone in opted:
                j.outcome, j.error_code = "Skipped_Opted_Out", "OPTED_OUT"
                j.error = f"the recipient opted out ({self.config.mapping.consent.object}); nothing was sent"
                continue
            for obj, path in person_paths.items():
                if _path_value(j.record, path) is True:
                    j.outcome, j.error_code = "Skipped_Opted_Out", "OPTED_OUT"
                    j.error = f"the {obj.lower()} opted out ({obj}.{path.split('.')[-1]}); nothing was sent"
                    break

    def _opted_out(self, phones: list[str]) -> set[str]:
        c = self.config.mapping.consent
        if self._consent_read is not None:
            self._consents, self._consent_read = self._consent_read.result(), None
        if self._consents is not None:
            return self._consents & set(phones)
        rows = self.org.select_in([c.f("phone")], c.object, c.f("phone"), phones, where=f"{c.f('opted_out')} = true")
        return {r[c.f("phone")] for r in rows}

    def _all_opted_out(self) -> set[str] | None:
        """Every opted-out number, when there are few; None when there are too many to hold."""
        c = self.config.mapping.consent
        out: set[str] = set()
        soql = f"SELECT {c.f('phone')} FROM {c.object} WHERE {c.f('opted_out')} = true"
        for row in self.org.query_iter(soql):
            out.add(row[c.f("phone")])
            if len(out) > CONSENT_CACHE:
                # ASSUMPTION: above this many opt-outs, per-batch IN queries cost fewer calls.
                return None
        return out

    # -- claiming -----------------------------------------------------------------------------
    def _claim(
        self,
        jobs: list[_Job],
        summary: Summary,
        *,
        claim: bool = True,
        prepared: _Claim | None = None,
        sent: Callable[[], None] | None = None,
    ) -> list[_Job]:
        """Write Sending (or the reason it won't be sent) to every record before any send.

        With ``claim=False`` (records already in Sending) only the refusals are written.
        ``prepared``: the reader built these updates already (:meth:`_claim_updates`), and
        ``sent`` is called once they are on the wire (:meth:`Org.write_prepared`)."""
        if prepared is not None:
            write, targets = prepared
            outcomes = self.org.write_prepared(write, sent=sent)
        else:
            updates, targets = self._claim_updates(jobs, claim=claim)
            if self.dry_run or not updates:
                return jobs
            outcomes = self.org.write("update", self.m.object, updates, bulk=False)
        kept: list[_Job] = [j for j in jobs if j.outcome is None and not claim]
        for j, o in zip(targets, outcomes, strict=True):
            if o.ok:
                kept.append(j)
            else:
                summary.claim_failed += 1
                log.warning("could not claim %s (%s: %s); it stays queued for the next run", j.id, o.code, o.message)
        return kept

    def _claim_updates(self, jobs: list[_Job], *, claim: bool) -> tuple[list[dict[str, Any]], list[_Job]]:
        """The claim's record updates, and the job each is for."""
        f = self.m.f
        updates: list[dict[str, Any]] = []
        targets: list[_Job] = []
        for j in jobs:
            rec: dict[str, Any] = {"Id": j.id}
            if j.outcome is None and not claim:
                continue
            if j.outcome is None:
                rec.update({f("status"): "Sending", f("send_key"): j.key, f("attempts"): j.attempts})
                rec[f("phone")] = j.phone
            else:
                rec.update({f("status"): j.outcome, f("error_code"): j.error_code, f("error_message"): _cut(j.error)})
                if j.phone:
                    rec[f("phone")] = j.phone
            updates.append(rec)
            targets.append(j)
        return updates, targets

    # -- sending ---------------------------------------------------------------------------
    def _send(self, jobs: list[_Job], summary: Summary, *, done: int = 0) -> dict[str, RecipientResult]:
        """Send ``jobs`` (claimed); their results by key. On a refusal of the whole send
        (``AuthError``, ``InsufficientCredit``) ``self._refused`` holds what did not go out."""
        results: dict[str, RecipientResult] = {}
        self._refused = []
        by_sender: dict[str | None, list[_Job]] = {}
        for j in jobs:
            by_sender.setdefault(j.sender, []).append(j)
        for sender, group in by_sender.items():
            message = Message(body="{{ sf_body }}", sender=sender, track_links=self.config.send.track_links)
            recipients = [Recipient(j.phone or "", vars={"sf_body": j.body}, key=j.key) for j in group]

            def progress(n: int, total: int, base: int = done + len(results)) -> None:
                if self.progress:
                    self.progress("sending", base + n, done + len(jobs))

            try:
                if self.router is not None:
                    items = self._route(message, recipients)
                    progress(len(items), len(items))
                else:
                    result = self.client.send_many(
                        message, recipients, dry_run=self.dry_run, on_invalid="skip", on_progress=progress
                    )
                    items = result.results
            except AmbiguousSend as exc:
                # Settled ones are written back; the rest stay Sending for the next run.
                items = exc.result.results if exc.result is not None else ()
                summary.errors.append(redact(str(exc)))
            except (AuthError, InsufficientCredit):
                self._refused = group
                raise
            for j, r in zip(group, items, strict=False):
                results[j.key] = r
        return results

    def _route(self, message: Message, recipients: list[Recipient]) -> tuple[RecipientResult, ...]:
        """Send through the router; an outcome in doubt comes back as such, never sent elsewhere."""
        assert self.router is not None
        routed = self.router.send(recipients, message, dry_run=self.dry_run, on_invalid="skip", on_doubt="report")
        counts: dict[str, int] = {}
        for rcpt, r in zip(recipients, routed.results, strict=True):
            if r.account is not None and rcpt.key:
                self.account[rcpt.key] = r.account
                counts[r.account] = counts.get(r.account, 0) + 1
        for name, n in sorted(counts.items()):
            log.info("account %s sent or refused %d record(s)", name, n)
        return routed.as_send_result().results

    def _provider(self, key: str) -> str:
        """The provider that sent this send key: its account's, when routed."""
        if self.router is not None and key in self.account:
            return self.router.clients[self.account[key]].provider.name
        return self.client.provider.name

    def _release(self, jobs: list[_Job], exc: SmsRelayError) -> None:
        """The provider refused the whole send: nothing went out, so the claims go back to Queued."""
        if self.dry_run or not jobs:
            return
        f = self.m.f
        self.org.write(
            "update",
            self.m.object,
            [{"Id": j.id, f("status"): "Queued", f("error_message"): _cut(str(exc))} for j in jobs],
            bulk=False,
        )

    # -- writing back ---------------------------------------------------------------------------
    def _write_back(
        self, jobs: list[_Job], results: Mapping[str, RecipientResult], summary: Summary, *, fresh: bool = True
    ) -> None:
        self._apply(self._outcomes(jobs, results, summary, fresh=fresh), summary)

    def _outcomes(
        self, jobs: list[_Job], results: Mapping[str, RecipientResult], summary: Summary, *, fresh: bool = True
    ) -> _Outcomes:
        """What to write for each sent job (counted into ``summary``); :meth:`_apply` writes it."""
        f = self.m.f
        now = self.clock.now()
        out = _Outcomes()
        updates, written, doubtful, unsent = out.updates, out.written, out.doubtful, out.unsent
        for j in jobs:
            r = results.get(j.key)
            if r is not None and r.retryable:
                # Certainly not sent (throttled past the longest wait, or refused before the
                # request was written): back to Queued, so the next run sends it, not Failed.
                unsent.append((j, r))
                continue
            if r is not None and r.in_doubt:
                # The provider may have taken it and could not say: a person decides, never a
                # resend (the next run's reconcile could find no trace yet and send it again).
                doubtful.append(j)
                continue
            if r is None or r.status is Status.UNKNOWN:
                summary.ambiguous += 1
                continue
            handoff = HANDOFF.get(r.status, "Failed")
            rec: dict[str, Any] = {"Id": j.id, f("status"): handoff, f("provider"): self._provider(j.key)}
            if r.accepted:
                summary.sent += fresh
                if fresh and j.key in self.account:
                    account = self.account[j.key]
                    summary.sent_by[account] = summary.sent_by.get(account, 0) + 1
                rec.update(
                    {
                        f("provider_message_id"): r.message_id,
                        f("parts"): r.parts or None,
                        f("sent_at"): now,
                        f("delivery_status"): DELIVERY_PICKLIST[r.status],
                        f("delivery_updated_at"): now,
                        f("error_code"): None,
                        f("error_message"): None,
                    }
                )
                if self.m.has("delivery_raw_status"):
                    rec[f("delivery_raw_status")] = None
            else:
                if handoff == "Rejected":
                    summary.rejected += 1
                else:
                    summary.failed += 1
                rec.update({f("error_code"): r.status.value.upper(), f("error_message"): _cut(r.error)})
                rec[f("delivery_status")] = DELIVERY_PICKLIST[r.status]
                rec[f("delivery_updated_at")] = now
            updates.append(rec)
            written.append((j, r, now))
            if r.message_id:
                out.applied.append(_applied(j, r, now))
        if updates and not self.dry_run:
            out.refused = self.org.refusals(self.m.object, updates)
        return out

    def _apply(self, out: _Outcomes, summary: Summary) -> None:
        """Write the outcomes: the unsent back to Queued, the doubtful to Ambiguous, the rest at once."""
        f = self.m.f
        updates, written, doubtful, unsent = out.updates, out.written, out.doubtful, out.unsent
        if unsent:
            summary.requeued += len(unsent)
            if not self.dry_run:
                self.org.write(
                    "update",
                    self.m.object,
                    [
                        {
                            "Id": j.id,
                            f("status"): "Queued",
                            f("error_code"): "NOT_SENT",
                            f("error_message"): _cut(r.error),
                        }
                        for j, r in unsent
                    ],
                    bulk=False,
                )
        if doubtful:
            summary.ambiguous += len(doubtful)
            by_provider: dict[str, list[_Job]] = {}
            for j in doubtful if not self.dry_run else []:
                by_provider.setdefault(self._provider(j.key), []).append(j)
            for provider, group in by_provider.items():
                why = (
                    f"in doubt: {provider} may or may not have accepted this message and could "
                    "not be asked; not resent. Check the provider's log, then set Status to Queued to send again."
                )
                self._mark_ambiguous(group, "IN_DOUBT", why)
        if self.dry_run or not updates:
            return
        # No budget check here: a claimed record must leave Sending once its SMS went out.
        phase, self.org.phase = self.org.phase, "write-back"
        try:
            # The write runs in a helper while this thread stages the state file's rows (uncommitted
            # until the outcomes say which records were written): the rows cost no time after the call.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smsrelay-sf-write") as pool:
                writing = pool.submit(self.org.write, "update", self.m.object, updates, refused=out.refused)
                staged = out.applied
                self.state.remember_after(staged, lambda: self._written(written, writing.result(), summary, staged))
        finally:
            self.org.phase = phase

    def _written(
        self,
        written: list[tuple[_Job, RecipientResult, datetime]],
        outcomes: list[RecordOutcome],
        summary: Summary,
        staged: list[Applied],
    ) -> list[Applied]:
        """What the state file keeps of a write-back: the ``staged`` rows (one per written job
        with a message id, in order) whose record was written; ``staged`` itself when all were."""
        if all(o.ok for o in outcomes):
            return staged
        rows = iter(staged)
        applied: list[Applied] = []
        for (j, r, _), o in zip(written, outcomes, strict=True):
            row = next(rows) if r.message_id else None
            if not o.ok:
                summary.writeback_failed += 1
                log.error("write-back of %s failed (%s: %s); it is reconciled next run", j.id, o.code, o.message)
            elif row is not None:
                applied.append(row)
        return applied

    # -- crash recovery -----------------------------------------------------------------------------
    def reconcile(self, summary: Summary) -> None:
        """Settle records a crash left in Sending: written back if the provider has them,
        sent again (same key) if it says it never saw them, Ambiguous if it cannot tell."""
        f = self.m.f
        self.org.phase = "reconcile"
        left, self._left = self._left, None
        rows = left.result() if left is not None else self._left_in_sending()
        if not rows:
            return
        jobs: list[_Job] = []
        for row in rows:
            j = self._job(row)
            j.attempts -= 1
            j.key = str(row.get(f("send_key")) or "")
            jobs.append(j)
        log.warning("%d record(s) were left in Sending by an earlier run; reconciling", len(jobs))
        with_key = [j for j in jobs if j.key]
        lost = [j for j in jobs if not j.key]
        found: dict[str, RecipientResult] = {}
        # Routed, a key is resent only if every account can be asked for it and none has it.
        clients = list(self.router.clients.values()) if self.router else [self.client]
        if with_key and all(c.capabilities.lookup_by_ref for c in clients):
            for c in clients:
                for key, r in c.lookup([j.key for j in with_key if j.key not in found]).items():
                    found[key] = r
                    if self.router is not None:
                        self.account[key] = next(n for n, cc in self.router.clients.items() if cc is c)
        elif with_key:
            lost += with_key
            with_key = []
        done = [j for j in with_key if j.key in found]
        for j in done:
            self._prepare(j)
        summary.reconciled += len(done)
        self._write_back(done, found, summary, fresh=False)
        again = [j for j in with_key if j.key not in found]
        if again:
            # The provider never saw these keys: the claim was written, the send was not.
            summary.resent += len(again)
            self._process(again, summary, claim=False)
        if lost:
            summary.ambiguous += len(lost)
            self._ambiguous(lost, summary)

    def _ambiguous(self, jobs: list[_Job], summary: Summary) -> None:
        if self.dry_run:
            return
        who = "not every account of the routing config can" if self.router else f"{self.client.provider.name} cannot"
        why = (
            f"{who} be asked whether it took this message; "
            "not resending. Check the provider's log, then set Status to Queued to send again."
        )
        self._mark_ambiguous(jobs, "AMBIGUOUS", why)

    def _mark_ambiguous(self, jobs: list[_Job], code: str, why: str) -> None:
        """Leave records for review: Status Ambiguous, which no sync sends or reconciles again."""
        f = self.m.f
        self.org.write(
            "update",
            self.m.object,
            [{"Id": j.id, f("status"): "Ambiguous", f("error_code"): code, f("error_message"): why} for j in jobs],
            bulk=False,
        )


CONSENT_CACHE = 50_000


def _drain(q: queue.Queue[Any], each: Callable[[], None]) -> None:
    """Take from ``q`` until its producer's ``_Ended``, calling ``each`` for every item taken
    (what the producer waits on to go on), so the producer is never left blocked."""
    while not isinstance(q.get(), _Ended):
        each()


def _cut(text: str | None, n: int = 255) -> str | None:
    if text is None:
        return None
    text = redact(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _applied(j: _Job, r: RecipientResult, now: datetime) -> Applied:
    assert r.message_id
    return Applied(r.message_id, j.id, j.key, j.phone, j.sender, DELIVERY_PICKLIST[r.status], _ms(now))


def _ms(dt: datetime) -> datetime:
    """Salesforce keeps milliseconds; compare what it holds."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)
