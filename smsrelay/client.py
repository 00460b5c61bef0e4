"""The client: one API over every provider.

>>> with Client("sandbox") as client:  # doctest: +SKIP
...     result = client.send("+61491570156", "Hi {{ name }}", vars={"name": "Ann"})
...     result.results[0].status
<Status.QUEUED: 'queued'>
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from smsrelay.clock import Clock
from smsrelay.config import ProviderSettings, load_settings
from smsrelay.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRequest,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
    TransportError,
    Unsupported,
)
from smsrelay.model import (
    Capabilities,
    Delivery,
    Encoding,
    Message,
    PreparedSms,
    Recipient,
    RecipientResult,
    SendResult,
    Status,
)
from smsrelay.phone import normalize
from smsrelay.preflight import check_message, check_sender, unreachable
from smsrelay.providers import provider_class
from smsrelay.providers.base import Balance, EventPage, Provider, Quote
from smsrelay.providers.batching import RequestStream
from smsrelay.segments import check_length
from smsrelay.templates import render

if TYPE_CHECKING:  # the feed, the inbox and the journal load on first use: a plain send needs none
    from smsrelay.feed import Feed
    from smsrelay.inbox import Inbox
    from smsrelay.journal import SendJournal

__all__ = ["Client", "Preview"]

log = logging.getLogger("smsrelay.client")

Progress = Callable[[int, int], None]
OnInvalid = Literal["raise", "skip"]
# What a send does with messages it cannot settle: raise AmbiguousSend (default), return
# them as in-doubt results, or send them again (at least once: may deliver twice).
OnDoubt = Literal["raise", "report", "resend"]
ON_DOUBT: tuple[OnDoubt, ...] = ("raise", "report", "resend")

# How long reconciliation keeps asking the provider, by key, after an ambiguous send:
# longer than any read-after-write lag a provider documents (Kudosity V2: seconds).
DEFAULT_RECONCILE_WINDOW = timedelta(seconds=60)
# The waits between lookups grow 2, 4, 8 s … up to this.
_MAX_LOOKUP_GAP = 15.0
# Prepared messages are handed to the workers in windows growing to this size.
_MAX_WINDOW = 4_096


@dataclass(frozen=True)
class Preview:
    """What a send would be: encodings, parts, and cost where the provider tells."""

    recipients: int
    messages: int
    parts: int
    encodings: Mapping[Encoding, int]
    rejected: tuple[RecipientResult, ...]
    cost: Quote | None
    sample: str | None
    estimated_duration: timedelta | None


def idempotency_key(context: str, to: str, body: str) -> str:
    """The key of one message: stable for the same context, recipient and body.

    >>> idempotency_key("dag/run/task/0", "+61491570156", "hi")[:3]
    'sr-'
    """
    digest = hashlib.sha256(f"{context}\x1f{to}\x1f{body}".encode()).hexdigest()
    return "sr-" + digest[:32]


def _check_on_doubt(value: str) -> OnDoubt:
    for known in ON_DOUBT:
        if value == known:
            return known
    raise ConfigError(f"on_doubt must be one of {', '.join(ON_DOUBT)}, got {value!r}", field="on_doubt")


def _in_order(positions: list[int], results: list[RecipientResult]) -> list[RecipientResult]:
    return [r for _, r in sorted(zip(positions, results, strict=True), key=lambda pr: pr[0])]


class _Sending:
    """The requests of one ``send_many`` in flight: windows of prepared messages in, results out.

    Each window's keys are claimed (journal) or looked up first, exactly as a whole send's
    were; its full requests go to the workers at once, the rest wait for more messages
    (``RequestStream``). Outcomes are journaled in the caller's thread, in order.
    """

    def __init__(
        self, client: Client, *, dry_run: bool, on_doubt: OnDoubt, on_progress: Progress | None, total: int | None
    ) -> None:
        self.client = client
        self.dry_run = dry_run
        self.on_doubt = on_doubt
        self.on_progress = on_progress
        self.total = total
        self.results: dict[str, RecipientResult] = {}
        self.batch_ids: list[str] = []
        self.fatal: SmsRelayError | None = None
        self.done = 0
        self.stream = RequestStream(client._plan, client.capabilities.bulk_max, client.provider.request_key)
        workers = max(1, client.settings.concurrency or client.capabilities.concurrency)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smsrelay-send")
        self.jobs: list[tuple[list[PreparedSms], Future[tuple[str | None, list[RecipientResult]]]]] = []
        self.collected = 0
        self.progress(0)

    def progress(self, count: int) -> None:
        self.done += count
        if self.on_progress is not None:
            self.on_progress(self.done, self.total if self.total is not None else self.done)

    def dispatch(self, window: list[PreparedSms], *, stable: bool, last: bool = False) -> None:
        """Claim or look up this window's keys, then hand its full requests (all, if ``last``) to the workers."""
        client = self.client
        settled, in_flight = client._known(window, stable=stable, dry_run=self.dry_run)
        self.results.update(settled)
        self.progress(len(settled))
        todo = [p for p in window if p.key not in settled and p.key not in in_flight]
        for chunk in client._plan([p for p in window if p.key in in_flight]):
            self._submit(chunk, fresh=False)
        ready = self.stream.add(todo) + (self.stream.close() if last else [])
        if ready and client.provider.limiter is not None and not self.dry_run:
            client.provider.limiter.book(len(ready))  # one block of the account's turns, if shared
        for chunk in ready:
            self._submit(chunk, fresh=True)
        self._collect(block=False)

    def wait(self) -> None:
        """Every request handed out answered and journaled."""
        try:
            self._collect(block=True)
        finally:
            self.pool.shutdown(wait=True)

    def _submit(self, chunk: list[PreparedSms], *, fresh: bool) -> None:
        self.jobs.append((chunk, self.pool.submit(self._job, chunk, fresh)))

    def _job(self, chunk: list[PreparedSms], fresh: bool) -> tuple[str | None, list[RecipientResult]]:
        return self.client._run_chunk(chunk, fresh, self.dry_run, self.on_doubt, self.fatal)

    def _collect(self, *, block: bool) -> None:
        client = self.client
        while self.collected < len(self.jobs):
            chunk, fut = self.jobs[self.collected]
            if not block and not fut.done():
                return
            try:
                batch_id, results = fut.result()
            except (AuthError, InsufficientCredit) as exc:
                self.fatal = self.fatal or exc
                batch_id, results = None, [client._unsent(p, exc) for p in chunk]
            self.collected += 1
            if batch_id:
                self.batch_ids.append(batch_id)
            # Adapters answer in batch order; keyed results by key.
            self.results.update((p.key, r) for p, r in zip(chunk, results, strict=True))
            if client.journal is not None and not self.dry_run:
                client.journal.finish(client.provider.name, results)
            self.progress(len(chunk))


class Client:
    """Send SMS and read delivery reports through one provider.

    ``Client("kudosity", api_key=...)`` takes settings as keyword arguments;
    ``Client()`` reads ``SMSRELAY_*`` variables (or ``SMSRELAY_CONFIG``), and
    defaults to the embedded ``sandbox``. ``account`` names this account where
    several share one inbox (a :class:`~smsrelay.routing.Router` passes each its
    name): the sends it records there for polling carry it, so each account asks
    only for its own.
    """

    def __init__(
        self,
        provider: str | Provider | None = None,
        *,
        settings: ProviderSettings | None = None,
        config_file: str | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        inbox: str | Inbox | None = None,
        reconcile_window: float | timedelta | None = None,
        on_doubt: OnDoubt | None = None,
        journal: str | SendJournal | bool | None = None,
        account: str | None = None,
        **options: Any,
    ) -> None:
        self.account = account
        self._journal_spec = journal
        # env= stands for the whole environment: SMSRELAY_JOURNAL and SMSRELAY_INBOX come from it alone.
        self._env: Mapping[str, str] = env if env is not None else os.environ
        self._journal_env = self._env.get("SMSRELAY_JOURNAL")
        self._journal: SendJournal | None = None
        self._own_journal_inbox: Inbox | None = None
        # The event inbox (a URL, a path or an Inbox): opened on first use by events().
        self._inbox_spec = inbox
        self._inbox: Inbox | None = inbox if inbox is not None and not isinstance(inbox, str) else None
        self._own_inbox = False
        self._feeds: dict[str, Feed] = {}
        if isinstance(provider, Provider):
            self.provider = provider
        else:
            if settings is None:
                settings = load_settings(provider, config_file=config_file, env=env, **options)
            self.provider = provider_class(settings.provider)(settings, clock=clock)
        self.settings = self.provider.settings
        # Given here, else the provider's settings (SMSRELAY_RECONCILE_WINDOW, a YAML key, a connection extra).
        if reconcile_window is None:
            reconcile_window = self.settings.reconcile_window
        if reconcile_window is None:
            reconcile_window = DEFAULT_RECONCILE_WINDOW
        window = reconcile_window if isinstance(reconcile_window, timedelta) else timedelta(seconds=reconcile_window)
        if window < timedelta(0):
            self.provider.close()
            raise ConfigError("reconcile_window cannot be negative", field="reconcile_window")
        self.reconcile_window = window
        self.on_doubt = _check_on_doubt(on_doubt or self.settings.on_doubt or "raise")

    def __repr__(self) -> str:
        return f"Client(provider={self.provider.name!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.provider.close()
        if self._own_journal_inbox is not None:
            self._own_journal_inbox.close()
            self._own_journal_inbox = None
            self._journal = None
        if self._own_inbox and self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    @property
    def capabilities(self) -> Capabilities:
        return self.provider.capabilities

    @property
    def journal(self) -> SendJournal | None:
        """The send journal, opened on first use; None when this client keeps none.

        ``journal=`` a URL or path (or ``SMSRELAY_JOURNAL``) opens it there; ``True``, or
        an inbox configured (``inbox=``, ``SMSRELAY_INBOX``), keeps it in the inbox's
        database; ``False`` keeps none.
        """
        if self._journal is not None or self._journal_spec is False:
            return self._journal
        from smsrelay.journal import SendJournal

        spec = self._journal_spec
        if isinstance(spec, SendJournal):
            self._journal = spec
        elif isinstance(spec, str) or (spec is None and self._journal_env):
            from smsrelay.inbox import open_inbox

            self._own_journal_inbox = open_inbox(spec if isinstance(spec, str) else str(self._journal_env))
            self._journal = SendJournal(self._own_journal_inbox)
        elif spec is True or self._inbox_spec is not None or self._inbox is not None or self._env.get("SMSRELAY_INBOX"):
            self._journal = SendJournal(self.inbox)
        return self._journal

    # -- sending ---------------------------------------------------------
    def send(
        self,
        to: str | Recipient | Sequence[str | Recipient],
        message: str | Message,
        *,
        sender: str | None = None,
        vars: Mapping[str, Any] | None = None,
        key: str | None = None,
        dry_run: bool = False,
        on_invalid: OnInvalid = "raise",
        on_progress: Progress | None = None,
        on_doubt: OnDoubt | None = None,
    ) -> SendResult:
        """Send ``message`` to one number or many.

        ``key`` is the idempotency context: each recipient's key is derived from it,
        the recipient and the body (see :meth:`send_many` and ``docs/client.md`` for
        what each provider guarantees about a repeated key).

        >>> Client("sandbox").send("+61491570156", "Hi", dry_run=True).dry_run  # doctest: +SKIP
        True
        """
        msg = message if isinstance(message, Message) else Message(body=message)
        if sender or vars or key:
            msg = replace(
                msg,
                sender=sender or msg.sender,
                vars={**msg.vars, **(vars or {})},
                ref=key or msg.ref,
            )
        recipients = [to] if isinstance(to, str | Recipient) else list(to)
        return self.send_many(
            msg, recipients, dry_run=dry_run, on_invalid=on_invalid, on_progress=on_progress, on_doubt=on_doubt
        )

    def prepare(
        self, message: Message, recipients: Iterable[str | Recipient], *, on_invalid: OnInvalid = "raise"
    ) -> tuple[list[PreparedSms], list[RecipientResult]]:
        """Render, normalise and check every message; nothing is sent.

        Returns the messages ready to send and the recipients rejected (invalid
        numbers, and with ``on_invalid="skip"`` template or length errors). With
        ``on_invalid="raise"`` a template or length error raises before any send.
        """
        ready, rejected, _, _ = self._prepare(message, recipients, on_invalid)
        return ready, rejected

    def _prepare(
        self, message: Message, recipients: Iterable[str | Recipient], on_invalid: OnInvalid
    ) -> tuple[list[PreparedSms], list[RecipientResult], list[int], list[int]]:
        ready: list[PreparedSms] = []
        rejected: list[RecipientResult] = []
        ready_pos: list[int] = []
        rejected_pos: list[int] = []
        for pos, outcome in self._prepared(message, recipients, on_invalid):
            if isinstance(outcome, PreparedSms):
                ready.append(outcome)
                ready_pos.append(pos)
            else:
                rejected.append(outcome)
                rejected_pos.append(pos)
        return ready, rejected, ready_pos, rejected_pos

    def _prepared(
        self, message: Message, recipients: Iterable[str | Recipient], on_invalid: OnInvalid
    ) -> Iterator[tuple[int, PreparedSms | RecipientResult]]:
        """Each recipient's message ready to send, or its rejection, as the recipients come."""
        caps = self.capabilities
        context = message.ref or uuid.uuid4().hex
        max_chars = min(caps.max_chars, int(self.settings.option("max_chars", caps.max_chars)))
        sender = message.sender or self.settings.sender
        check_sender(caps, self.provider.name, sender)
        check_message(caps, self.provider.name, message)
        if sender != message.sender:
            message = replace(message, sender=sender)
        seen: set[str] = set()
        for pos, item in enumerate(recipients):
            rcpt = item if isinstance(item, Recipient) else Recipient(str(item))
            yield pos, self._prepare_one(message, rcpt, context, max_chars, on_invalid, seen)

    def _check_bodies(self, message: Message, recipients: Sequence[str | Recipient]) -> None:
        """Raise the first template or length error ``_prepare_one`` would raise, before anything is sent.

        Rendering and counting are cheap next to validating a number, so this pass lets
        the numbers be validated while the first requests are already out.
        """
        caps = self.capabilities
        max_chars = min(caps.max_chars, int(self.settings.option("max_chars", caps.max_chars)))
        check_sender(caps, self.provider.name, message.sender or self.settings.sender)
        check_message(caps, self.provider.name, message)
        for item in recipients:
            rcpt = item if isinstance(item, Recipient) else Recipient(str(item))
            variables = {**message.vars, **rcpt.vars}
            try:
                check_length(render(message.body, variables), max_chars=max_chars, provider=self.provider.name)
            except InvalidRequest:
                # _prepare_one rejects an invalid or unreachable number before rendering its body.
                try:
                    to = normalize(rcpt.to, self.settings.default_region)
                except InvalidRequest:
                    continue
                if unreachable(caps, self.provider.name, to):
                    continue
                body = render(message.body, variables, recipient=to)  # the same error, naming the recipient
                check_length(body, max_chars=max_chars, provider=self.provider.name, recipient=to)

    def _prepare_one(
        self,
        message: Message,
        rcpt: Recipient,
        context: str,
        max_chars: int,
        on_invalid: OnInvalid,
        seen: set[str],
    ) -> PreparedSms | RecipientResult:
        try:
            to = normalize(rcpt.to, self.settings.default_region)
        except InvalidRequest as exc:
            return RecipientResult(to=rcpt.to, status=Status.REJECTED, error=exc.message)
        if reason := unreachable(self.capabilities, self.provider.name, to):
            return RecipientResult(to=to, status=Status.REJECTED, error=reason)
        try:
            body = render(message.body, {**message.vars, **rcpt.vars}, recipient=to)
            seg = check_length(body, max_chars=max_chars, provider=self.provider.name, recipient=to)
        except InvalidRequest as exc:
            if on_invalid == "raise":
                raise
            return RecipientResult(to=to, status=Status.REJECTED, error=exc.message)
        key = rcpt.key or idempotency_key(context, to, body)
        if key in seen:
            # The same message to the same number twice in one send is a duplicate.
            return RecipientResult(to=to, status=Status.REJECTED, error="duplicate recipient", key=key)
        seen.add(key)
        return PreparedSms(to=to, body=body, key=key, encoding=seg.encoding, parts=seg.parts, message=message)

    def send_many(
        self,
        message: Message,
        recipients: Iterable[str | Recipient],
        *,
        dry_run: bool = False,
        on_invalid: OnInvalid = "raise",
        on_progress: Progress | None = None,
        on_doubt: OnDoubt | None = None,
    ) -> SendResult:
        """Send one message template to many recipients, in the fewest provider calls.

        Invalid numbers come back as ``rejected`` results and never stop the batch;
        a 429 beyond the longest wait comes back ``failed`` with ``retry_after``.
        A send that may have reached the provider (reset, timeout or 5xx after the
        request was written) is never sent again without proof that it was not
        accepted: the client asks the provider by key, with backoff, for
        ``reconcile_window``. What it cannot settle is *in doubt*: by default
        ``AmbiguousSend`` is raised (``exc.result`` holds every result, the in-doubt
        ones marked ``in_doubt``); ``on_doubt="report"`` returns them instead, and
        ``on_doubt="resend"`` sends them again (at least once: may deliver twice).

        >>> client.send_many(Message("Hi"), ["+61491570156"], on_doubt="report").in_doubt  # doctest: +SKIP
        []
        """
        on_doubt = _check_on_doubt(on_doubt or self.on_doubt)
        caps = self.capabilities
        if message.send_at is not None and not caps.schedule:
            raise Unsupported(f"{self.provider.name} cannot schedule messages", provider=self.provider.name)
        if dry_run and not caps.dry_run:
            fine, refused, fine_pos, refused_pos = self._prepare(message, recipients, on_invalid)
            local = [RecipientResult(to=p.to, status=Status.QUEUED, parts=p.parts, key=p.key) for p in fine]
            return SendResult(
                self.provider.name, None, tuple(_in_order(fine_pos + refused_pos, local + refused)), dry_run=True
            )
        if on_invalid == "raise":
            listed = list(recipients)
            self._check_bodies(message, listed)  # a template or length error raises before anything is sent
            recipients = listed
        elif on_progress is not None and not isinstance(recipients, Sized):
            recipients = list(recipients)  # the progress counts against the total
        total = len(recipients) if isinstance(recipients, Sized) else None
        if total is not None:
            self._warn_eta(total)
        sending = _Sending(self, dry_run=dry_run, on_doubt=on_doubt, on_progress=on_progress, total=total)
        keyed = [True]  # every recipient so far carries the caller's own key

        def noting_keys(items: Iterable[str | Recipient]) -> Iterator[str | Recipient]:
            for item in items:
                if not (isinstance(item, Recipient) and item.key):
                    keyed[0] = False
                yield item

        ready: list[PreparedSms] = []
        rejected: list[RecipientResult] = []
        ready_pos: list[int] = []
        rejected_pos: list[int] = []
        try:
            # Prepared messages go to the workers a window at a time (1, 2, 4 … 4,096), so the
            # first request leaves while later numbers are still being validated.
            window: list[PreparedSms] = []
            size = 1
            for pos, outcome in self._prepared(message, noting_keys(recipients), on_invalid):
                if isinstance(outcome, PreparedSms):
                    ready.append(outcome)
                    ready_pos.append(pos)
                    window.append(outcome)
                else:
                    rejected.append(outcome)
                    rejected_pos.append(pos)
                    sending.progress(1)
                if len(window) >= size:
                    sending.dispatch(window, stable=message.ref is not None or keyed[0])
                    window, size = [], min(size * 2, _MAX_WINDOW)
            sending.dispatch(window, stable=message.ref is not None or keyed[0], last=True)
            if total is None:
                self._warn_eta(len(ready))
        finally:
            sending.wait()  # every request handed out is answered and journaled, even if preparing failed
        by_key = sending.results
        results = _in_order(ready_pos + rejected_pos, [by_key[p.key] for p in ready] + rejected)
        batch_ids = sending.batch_ids
        result = SendResult(
            self.provider.name,
            batch_ids[0] if len(batch_ids) == 1 else (",".join(batch_ids) or None),
            tuple(results),
            dry_run=dry_run,
        )
        if not dry_run:
            self._watch_sent(result)
        fatal = sending.fatal
        if fatal is not None and not result.accepted:
            raise fatal
        doubt = result.in_doubt
        if doubt and on_doubt == "raise":
            raise AmbiguousSend(
                f"{len(doubt)} message(s) may or may not have been accepted by {self.provider.name}, and it could "
                f"not tell us within {self.reconcile_window.total_seconds():g} s; not resending them. Settle them "
                "later by key: Client.reconcile(keys), or `smsrelay reconcile KEY…`.",
                keys=[r.key for r in doubt if r.key],
                result=result,
                provider=self.provider.name,
            )
        return result

    def _warn_eta(self, messages: int) -> None:
        eta = self.estimate(messages)
        if eta is not None and eta > timedelta(minutes=1):
            log.warning(
                "%s: %d messages at the provider's rate limit will take about %s", self.provider.name, messages, eta
            )

    def _run_chunk(
        self, chunk: list[PreparedSms], fresh: bool, dry_run: bool, on_doubt: OnDoubt, fatal: SmsRelayError | None
    ) -> tuple[str | None, list[RecipientResult]]:
        """One job of a send: refused after a fatal error, reconciled first if claimed before, else sent."""
        if fatal is not None:
            return None, [self._unsent(p, fatal) for p in chunk]
        if not fresh and not self.capabilities.idempotency:
            # Claimed before without an outcome (a crash mid-send, or in doubt): ask first.
            return self._reconcile(chunk, "claimed by an earlier send that recorded no outcome", on_doubt)
        if fresh and self.journal is not None and not dry_run:
            return self._claim_and_send(chunk, on_doubt)
        return self._send_chunk(chunk, dry_run, on_doubt)

    def _claim_and_send(self, chunk: list[PreparedSms], on_doubt: OnDoubt) -> tuple[str | None, list[RecipientResult]]:
        """Claim one request's keys in the journal when its turn comes, then send what this claimed.

        Claimed here rather than with its window, a crash leaves in flight only the requests
        that were leaving. A key another send claimed since the window was looked up stays
        theirs: its recorded result comes back, or it is reconciled as any key in flight.
        """
        assert self.journal is not None
        try:
            # Its turn first: keys claimed while it waits would be in doubt after a crash.
            self.provider.take_turn()
        except TransportError as exc:  # e.g. the shared rate limit's store is down: nothing was sent
            return None, [self._failed(p, exc) for p in chunk]
        claim = self.journal.begin(self.provider.name, [p.key for p in chunk])
        if not claim.recorded and not claim.in_flight:
            return self._send_chunk(chunk, False, on_doubt)
        by_key: dict[str, RecipientResult] = dict(claim.recorded)
        fresh, in_flight = set(claim.fresh), set(claim.in_flight)
        mine = [p for p in chunk if p.key in fresh]
        theirs = [p for p in chunk if p.key in in_flight]
        batch_id: str | None = None
        if mine:
            batch_id, results = self._send_chunk(mine, False, on_doubt)
            by_key.update((p.key, r) for p, r in zip(mine, results, strict=True))
        if theirs:
            other_id, results = self._run_chunk(theirs, False, False, on_doubt, None)
            batch_id = batch_id or other_id
            by_key.update((p.key, r) for p, r in zip(theirs, results, strict=True))
        return batch_id, [by_key[p.key] for p in chunk]

    def _plan(self, ready: list[PreparedSms]) -> list[list[PreparedSms]]:
        """The provider's requests for these messages (``Provider.plan_requests``)."""
        return self.provider.plan_requests(ready) if ready else []

    def _known(
        self, ready: list[PreparedSms], *, stable: bool, dry_run: bool
    ) -> tuple[dict[str, RecipientResult], set[str]]:
        """Keys sent before (their results) and keys in flight, from the journal or the provider.

        With a journal, its record decides. Without one, a send whose keys are the
        caller's (``key=``/``Message.ref``, or ``Recipient.key``) is looked up at the
        provider first, where it can be searched by key and does not dedupe by itself:
        a re-run (e.g. of a GitHub workflow, in a fresh container) then sends nothing twice.
        """
        if dry_run or not ready:
            return {}, set()
        if self.journal is not None:
            claim = self.journal.known(self.provider.name, [p.key for p in ready])  # claimed per request, later
            if claim.recorded:
                log.info(
                    "%s: %d message(s) were sent before with the same key", self.provider.name, len(claim.recorded)
                )
            return claim.recorded, set(claim.in_flight)
        caps = self.capabilities
        if not stable or not caps.lookup_by_ref or caps.idempotency:
            return {}, set()
        found: dict[str, RecipientResult] = {}
        for chunk in self._plan(ready):
            try:
                found.update(self.provider.lookup([p.key for p in chunk]))
            except SmsRelayError as exc:
                # Unasked is not "sent": the chunk goes out, as it would have without the lookup.
                log.warning("%s: could not look up keys before sending (%s)", self.provider.name, exc)
        if found:
            log.info("%s: %d message(s) were sent before with the same key", self.provider.name, len(found))
        return found, set()

    @staticmethod
    def _unsent(p: PreparedSms, exc: SmsRelayError) -> RecipientResult:
        """The provider refused the request: nothing was sent."""
        return RecipientResult(to=p.to, status=Status.REJECTED, parts=p.parts, key=p.key, error=str(exc))

    @staticmethod
    def _failed(p: PreparedSms, exc: SmsRelayError) -> RecipientResult:
        """The request never reached the provider (e.g. connection refused): safe to send again."""
        return RecipientResult(to=p.to, status=Status.FAILED, parts=p.parts, key=p.key, error=f"not sent: {exc}")

    def _throttled(self, p: PreparedSms, exc: RateLimited) -> RecipientResult:
        """A 429 beyond the longest wait: not processed, so it may be sent again after ``retry_after``."""
        wait = exc.retry_after or timedelta(0)
        hint = f"retry after {wait.total_seconds():g} s" if wait else "retry later"
        return RecipientResult(
            to=p.to,
            status=Status.FAILED,
            parts=p.parts,
            key=p.key,
            error=f"not sent: {self.provider.name} is throttling; {hint} ({exc})",
            retry_after=wait,
        )

    def _doubtful(self, p: PreparedSms, cause: SmsRelayError | str) -> RecipientResult:
        return RecipientResult(
            to=p.to,
            status=Status.UNKNOWN,
            parts=p.parts,
            key=p.key,
            in_doubt=True,
            error=f"in doubt: {self.provider.name} may or may not have accepted it ({cause}); not resent",
        )

    def _send_chunk(
        self, chunk: list[PreparedSms], dry_run: bool, on_doubt: OnDoubt, *, reconcile: bool = True
    ) -> tuple[str | None, list[RecipientResult]]:
        """Send one chunk; settle an ambiguous failure by key (``reconcile``) or report it in doubt."""
        try:
            outcome = self.provider.send(chunk, dry_run=dry_run)
            return outcome.batch_id, list(outcome.results)
        except (AuthError, InsufficientCredit):
            raise
        except RateLimited as exc:
            return None, [self._throttled(p, exc) for p in chunk]
        except (TransportError, ProviderServerError) as exc:
            written = exc.request_sent if isinstance(exc, TransportError) else True
            if not written or dry_run:
                return None, [self._failed(p, exc) for p in chunk]
            if not reconcile:
                return None, [self._doubtful(p, exc) for p in chunk]
            return self._reconcile(chunk, exc, on_doubt)
        except AmbiguousSend as exc:
            return None, [self._doubtful(p, exc) for p in chunk]
        except SmsRelayError as exc:
            return None, [self._unsent(p, exc) for p in chunk]

    def _reconcile(
        self, chunk: list[PreparedSms], cause: SmsRelayError | str, on_doubt: OnDoubt
    ) -> tuple[str | None, list[RecipientResult]]:
        """After an ambiguous failure: find what was accepted; send again only on proof, once."""
        name = self.provider.name
        found: dict[str, RecipientResult] = {}
        proven = False
        if self.capabilities.lookup_by_ref:
            log.warning("%s: send outcome unknown (%s); looking up %d key(s)", name, cause, len(chunk))
            found, proven = self._settle([p.key for p in chunk])
        missing = [p for p in chunk if p.key not in found]
        batch_id: str | None = None
        again: dict[str, RecipientResult] = {}
        if missing and (proven or on_doubt == "resend"):
            if proven:
                log.info("%s: %d message(s) were not accepted; sending them once more", name, len(missing))
            else:
                log.warning("%s: sending %d message(s) in doubt again (on_doubt=resend)", name, len(missing))
            batch_id, results = self._send_chunk(missing, False, on_doubt, reconcile=False)
            again = {r.key: r for r in results if r.key}
        out = []
        for p in chunk:
            r = found.get(p.key) or again.get(p.key)
            out.append(r if r is not None else self._doubtful(p, cause))
        return batch_id, out

    def _settle(self, keys: list[str]) -> tuple[dict[str, RecipientResult], bool]:
        """Look ``keys`` up until all are found or ``reconcile_window`` has passed.

        Returns what was found, and whether the absence of the rest is proof: the
        last lookup answered, and it was made after the window (a provider may list
        a message seconds after accepting it, so an early "not found" proves nothing).
        """
        clock = self.provider.clock
        deadline = clock.now() + self.reconcile_window
        gap = 2.0
        found: dict[str, RecipientResult] = {}
        while True:
            asked_at = clock.now()
            answered = True
            try:
                found.update(self.provider.lookup([k for k in keys if k not in found]))
            except SmsRelayError as exc:
                answered = False
                log.warning("%s: lookup by key failed (%s); asking again", self.provider.name, exc)
            if all(k in found for k in keys):
                return found, True
            if asked_at >= deadline:
                # Asked after the window: the answer is final. One asked before it, however
                # late it came back, may have missed a message the list did not show yet.
                return found, answered
            left = (deadline - clock.now()).total_seconds()
            clock.sleep(max(0.0, min(gap, left)))  # past the deadline already: ask once more, now
            gap = min(gap * 2, _MAX_LOOKUP_GAP)

    def estimate(self, messages: int) -> timedelta | None:
        """How long ``messages`` sends take at the provider's rate limit, if it has one.

        >>> Client("sandbox").estimate(10) is None  # doctest: +SKIP
        True
        """
        rate = self.settings.rate_limit or self.provider.default_rate_limit
        if not rate or messages <= 0:
            return None
        calls = -(-messages // self.capabilities.bulk_max)
        # The limiter knows its own shape (a token bucket's burst, SMSKit's hourly windows).
        limiter = self.provider.limiter
        if limiter is not None:
            return timedelta(seconds=limiter.eta(calls))
        return timedelta(seconds=calls / rate)

    def preview(self, message: str | Message, recipients: Iterable[str | Recipient] = ("+61491570156",)) -> Preview:
        """Encoding, parts and cost of a send, without sending.

        >>> Client("sandbox").preview("Hi").parts  # doctest: +SKIP
        1
        """
        msg = message if isinstance(message, Message) else Message(body=message)
        ready, rejected = self.prepare(msg, recipients, on_invalid="skip")
        encodings: dict[Encoding, int] = {}
        for p in ready:
            encodings[p.encoding] = encodings.get(p.encoding, 0) + 1
        return Preview(
            recipients=len(ready) + len(rejected),
            messages=len(ready),
            parts=sum(p.parts for p in ready),
            encodings=encodings,
            rejected=tuple(rejected),
            cost=self.provider.quote(ready) if ready else None,
            sample=ready[0].body if ready else None,
            estimated_duration=self.estimate(len(ready)),
        )

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """Find messages by idempotency key (e.g. after ``AmbiguousSend``)."""
        return self.provider.lookup(keys)

    def reconcile(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        """Settle messages in doubt: the ones the provider accepted, by key, with their ids.

        Asks once, without waiting: run it after the provider's lag (a minute is plenty).
        Keys found are recorded in the send journal as sent, so a later send with the
        same key returns them. A key not found is absent: the provider has no such
        message, and a send with that key is then reconciled again before it goes out.
        ``Unsupported`` where the provider cannot be asked by key (Kudosity V1, ME-SMS).

        >>> client.reconcile(["sr-5f0c…"])  # doctest: +SKIP
        {'sr-5f0c…': RecipientResult(to='+61491570156', status=<Status.QUEUED: 'queued'>, ...)}
        """
        if not self.capabilities.lookup_by_ref:
            raise Unsupported(
                f"{self.provider.name} cannot be asked for a message by key; check its own log",
                provider=self.provider.name,
            )
        found = self.provider.lookup(list(keys))
        if found and self.journal is not None:
            self.journal.finish(self.provider.name, list(found.values()))
        return found

    # -- reports and events -------------------------------------------------
    def status(self, message_ids: Sequence[str] | str) -> dict[str, Delivery]:
        """The latest delivery report of each message id.

        >>> Client("sandbox").status(["sbx-1"])  # doctest: +SKIP
        {'sbx-1': Delivery(..., status=<Status.DELIVERED: 'delivered'>)}
        """
        from smsrelay.lifecycle import merge_all

        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        return merge_all(self.provider.status(ids))

    def events(self, since: str | None = None, *, limit: int = 500, cursor: str | None = None) -> EventPage:
        """One page of events after the cursor ``since``; pass ``page.cursor`` next time.

        With ``cursor="<name>"`` the position is kept durably in the inbox instead:
        each call returns the events after that reader's committed position, and
        commits the page it returned before (or call :meth:`commit_events`). With an
        inbox (``inbox=`` or ``SMSRELAY_INBOX``) or a named cursor, pushed and polled
        events come through one feed, deduplicated, and a late ``sent`` never
        follows ``delivered``. Without either, this polls the provider directly.

        >>> page = Client("sandbox").events(cursor="bridge")  # doctest: +SKIP
        >>> [e.kind for e in page]  # doctest: +SKIP
        ['delivery', 'reply']
        """
        from smsrelay.feed import CURSOR_PREFIX

        if cursor is not None:
            return self.feed(cursor).read(limit)
        if since is not None and not since.startswith(CURSOR_PREFIX):
            return self.provider.poll_events(since, limit=limit)
        if since is None and self._inbox_spec is None and not self._env.get("SMSRELAY_INBOX"):
            return self.provider.poll_events(None, limit=limit)
        return self.feed("default").read_since(since, limit)

    def _has_inbox(self) -> bool:
        """True when an inbox is configured: ``inbox=``, or ``SMSRELAY_INBOX``."""
        return self._inbox_spec is not None or self._inbox is not None or bool(self._env.get("SMSRELAY_INBOX"))

    def _watch_sent(self, result: SendResult) -> None:
        """With an inbox configured, remember sends the feed can follow only by id (Kaleyra, Kudosity V1)."""
        if not self._has_inbox():
            return
        from smsrelay.feed import follows_sends

        if not follows_sends(self.provider):
            return
        sent = {r.message_id: r.to for r in result.results if r.message_id and r.accepted}
        if sent:
            try:
                # One write, with the account: two accounts of one provider share the watch list.
                self.inbox.watch(self.provider.name, sent, account=self.account)
            except Exception as exc:  # the messages are sent; only their polled reports are at stake
                name = self.account or self.provider.name
                log.warning("%s: could not record %d sent message(s) in the inbox: %s", name, len(sent), exc)

    def feed(self, cursor: str = "default") -> Feed:
        """The unified feed read through the durable cursor named ``cursor``.

        >>> feed = Client("sandbox").feed("bridge")  # doctest: +SKIP
        >>> page = feed.read(); feed.commit(page)  # doctest: +SKIP
        """
        from smsrelay.feed import Feed

        found = self._feeds.get(cursor)
        if found is None:
            found = self._feeds[cursor] = Feed(self.provider, self.inbox, name=cursor)
        return found

    def commit_events(self, cursor: str, page: EventPage | str | None = None) -> None:
        """Acknowledge the events of the cursor ``cursor`` up to ``page`` (default: the last page read).

        >>> client.commit_events("bridge", page)  # doctest: +SKIP
        """
        self.feed(cursor).commit(page)

    @property
    def inbox(self) -> Inbox:
        """The event inbox: ``inbox=``, else ``SMSRELAY_INBOX``, else a file in the state directory."""
        if self._inbox is None:
            from smsrelay.feed import default_inbox_url
            from smsrelay.inbox import open_inbox

            spec = self._inbox_spec if self._inbox_spec is not None else default_inbox_url(self._env)
            self._inbox = open_inbox(str(spec))
            self._own_inbox = True
        return self._inbox

    def cancel(self, message_id: str) -> None:
        """Cancel a scheduled message."""
        self.provider.cancel(message_id)

    def balance(self) -> Balance:
        """The account's credit."""
        return self.provider.balance()

    def devices(self) -> list[Mapping[str, Any]]:
        """The account's sending phones and their SIMs (SMSKit); ``Unsupported`` elsewhere.

        >>> [d["deviceId"] for d in Client("smskit").devices()]  # doctest: +SKIP
        ['dvc_3K7J2H5F8M1N4Q9R6V0W']
        """
        return self.provider.devices()

    def check(self) -> None:
        """One cheap authenticated call; raises ``AuthError`` if refused."""
        self.provider.check()
