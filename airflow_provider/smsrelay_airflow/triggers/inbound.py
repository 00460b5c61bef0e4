"""``SmsInboundTrigger``: an inbound SMS starts a DAG (AIP-82 event-driven scheduling).

It watches the unified event feed of one connection (pushed replies the receiver
stored, and what polling the provider finds) through its own durable named cursor
in the event inbox, and fires one ``TriggerEvent`` per inbound message that its
:class:`~smsrelay_airflow.inbound.InboundRule` accepts. Use it through
:func:`smsrelay_airflow.assets.sms_asset`.

A new cursor starts after everything the feed already holds, so a new watcher never
fires on history. After that, exactly once across triggerer restarts, as far as
Airflow lets a trigger know:

- On Airflow >= 3.3 the trigger opts into the triggerer's shared-stream *ack mode*
  (``create_shared_stream_producer``): the cursor moves past a message only after
  the triggerer confirmed that the event it fired is stored in the metadata
  database. A message that arrived while the triggerer was down, or whose event was
  not yet stored when it stopped, is read again from the cursor; one whose event
  was stored and committed is never fired again. The one gap left is a crash in the
  second or so between the confirmation and the cursor commit: that message fires
  twice (at least once, never lost).
- On older Airflow 3 the trigger runs its own loop (``run()``) and commits a page
  one poll after yielding its events, by which time the triggerer has stored them.

Nothing here sends an SMS. Logs and reprs mask phone numbers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from smsrelay_airflow.inbound import InboundRule

if TYPE_CHECKING:
    from smsrelay import Client, Feed, InboxPage, Reply
    from smsrelay_airflow.hooks.sms import SmsHook

try:  # Airflow >= 3.3: the persistence-gated cursor
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer
except ImportError:  # pragma: no cover - older Airflow 3 runs run()
    SharedStreamProducer = None  # type: ignore[assignment,misc]

__all__ = ["SmsInboundTrigger"]

PAGE = 200
T = TypeVar("T")
# A URL whose user info carries a password: kwargs are shown in logs and the UI.
_PASSWORD_IN_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:[^/@]*@")


def _transient(exc: BaseException) -> bool:
    from smsrelay import ProviderServerError, RateLimited, TransportError

    return isinstance(exc, TransportError | ProviderServerError | RateLimited)


class SmsInboundTrigger(BaseEventTrigger):
    """Fire one event per inbound SMS from ``allow`` that matches ``keywords``/``pattern``.

    - ``sms_conn_id``: the smsrelay connection whose messages count (its provider).
    - ``allow``: the sender numbers that may start the DAG (E.164); required.
    - ``keywords``: the message's first word must be one of these (any case).
    - ``pattern``: a regular expression searched in the trimmed text; its named
      groups reach the payload as ``groups``.
    - ``to``: only messages sent to these numbers (your virtual numbers).
    - ``cursor``: the durable cursor's name in the inbox; one per watcher.
    - ``inbox``: the event inbox (path or URL without a password; default
      ``SMSRELAY_INBOX``, else the state directory's ``inbox.db``).
    - ``poll_interval``: seconds between reads of the feed (and provider polls).

    The payload (the asset event's ``extra["payload"]``) holds ``text``, ``from``,
    ``to``, ``occurred_at``, ``provider``, ``message_id``, ``event_id``,
    ``in_reply_to``, ``keyword`` and ``groups``. ``from`` is the full sender number,
    because the DAG needs it; the trigger's logs and reprs mask it.

    >>> SmsInboundTrigger("sms", allow=["+61491570156"], pattern=r"^RERUN (?P<job>\\w+)$",
    ...                   cursor="airflow/billing-rerun")  # doctest: +SKIP
    """

    def __init__(
        self,
        sms_conn_id: str,
        *,
        allow: Sequence[str] | str,
        cursor: str,
        keywords: Sequence[str] | str | None = None,
        pattern: str | None = None,
        to: Sequence[str] | str | None = None,
        inbox: str | None = None,
        poll_interval: float = 10.0,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        from smsrelay import ConfigError

        rule = InboundRule.build(allow=allow, keywords=keywords, pattern=pattern, to=to)
        if not isinstance(cursor, str) or not re.fullmatch(r"[A-Za-z0-9_.:@/-]{1,200}", cursor):
            raise ConfigError(
                f"{cursor!r} is not a cursor name: use 1 to 200 letters, digits or _ . : @ / -", field="cursor"
            )
        if inbox and _PASSWORD_IN_URL.match(inbox):
            raise ConfigError(
                "holds a password, which would show in logs and the UI; put it in PGPASSWORD or SMSRELAY_INBOX",
                field="inbox",
            )
        if not 0 < float(poll_interval) <= 60:
            # Ack mode fails an event left unresolved for [triggerer] shared_stream_ack_timeout (300 s).
            raise ConfigError(f"must be above 0 and at most 60 seconds, got {poll_interval!r}", field="poll_interval")
        self.sms_conn_id = sms_conn_id
        # Sorted, normalised values: the kwargs are the watcher's identity (BaseEventTrigger.hash).
        self.allow = sorted(rule.allow)
        self.keywords = list(rule.keywords)
        self.pattern = pattern or None
        self.to = sorted(rule.to)
        self.cursor = cursor
        self.inbox = inbox or None
        self.poll_interval = float(poll_interval)
        self.hook_params = dict(hook_params or {})
        self._rule = rule

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sms_conn_id": self.sms_conn_id,
                "allow": self.allow,
                "cursor": self.cursor,
                "keywords": self.keywords,
                "pattern": self.pattern,
                "to": self.to,
                "inbox": self.inbox,
                "poll_interval": self.poll_interval,
                "hook_params": self.hook_params,
            },
        )

    def __repr__(self) -> str:
        # BaseTrigger's repr prints every kwarg, and the triggerer logs it: mask the numbers.
        from smsrelay import mask_phone

        classpath, kwargs = self.serialize()
        kwargs = {**kwargs, "allow": [mask_phone(n) for n in self.allow], "to": [mask_phone(n) for n in self.to]}
        return str(self.repr(classpath, kwargs))

    @property
    def rule(self) -> InboundRule:
        """The filter this trigger applies to each inbound message."""
        return self._rule

    def event_for(self, reply: Reply) -> TriggerEvent | None:
        """The event ``reply`` fires, or None if the rule rejects it."""
        from smsrelay import mask_phone

        payload = self._rule.payload(reply)
        if payload is None:
            who = mask_phone(reply.phone)
            if self._rule.asks(reply):  # the right words from the wrong number: worth an operator's look
                self.log.warning("Inbound SMS %s from %s, not on the allowlist, matches; ignored.", reply.event_id, who)
            elif reply.phone in self._rule.allow:
                self.log.info("Inbound SMS %s from %s does not match; ignored.", reply.event_id, who)
            else:  # any other customer's reply on the account: not news
                self.log.debug("Inbound SMS %s from %s is not for this watcher.", reply.event_id, who)
            return None
        self.log.info("Inbound SMS %s from %s matched; firing an event.", reply.event_id, mask_phone(reply.phone))
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    # -- the feed --------------------------------------------------------------
    async def open_feed(self) -> tuple[SmsHook, Client, Feed]:
        """Connect without blocking the event loop; the feed reads through this trigger's cursor."""
        from smsrelay import Client
        from smsrelay_airflow.triggers.sms import connect

        try:
            hook: SmsHook = await connect(self.sms_conn_id, self.hook_params)
        except Exception as exc:  # e.g. no such connection: see call() on why pause
            self.log.error("Inbound SMS watcher failed; restarting in %.0f s: %s", self.poll_interval, exc)
            await asyncio.sleep(self.poll_interval)
            raise

        def build() -> tuple[Client, Feed]:  # opening the inbox touches the disk or the network
            client = Client(settings=hook.settings, inbox=self.inbox)
            return client, client.feed(self.cursor)

        try:
            client, feed = await self.call(build)
        except BaseException:
            hook.close()
            raise
        return hook, client, feed

    def start(self, feed: Feed) -> int:
        """The cursor's committed position; a new cursor starts after what the feed holds now (blocking).

        A new watcher must not fire on history: replies already in a shared inbox, or
        the provider's backlog, may hold last week's "RERUN billing".
        """
        inbox = feed.inbox
        if self.cursor in inbox.cursors():
            return inbox.position(self.cursor)
        for _ in range(100):  # the provider's backlog, page by page (bounded)
            if not feed.pump(limit=PAGE):
                break
        end, skipped = 0, 0
        while True:
            page = inbox.read_after(end, 1000, include_superseded=True)
            end, skipped = page.position, skipped + len(page)
            if not page.more:
                break
        inbox.commit(self.cursor, end)
        self.log.info("New cursor %r starts after the %d event(s) the feed already held.", self.cursor, skipped)
        return end

    def read(self, feed: Feed, position: int) -> InboxPage:
        """Poll the provider into the inbox, then the entries after ``position`` (blocking: run in a thread)."""
        feed.pump(limit=PAGE)
        return feed.inbox.read_after(position, PAGE)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking feed call in a thread; wait out transient provider errors, logged.

        Any other error ends the watcher, which Airflow restarts at once: pause first,
        so that a broken connection is retried at the poll pace, not in a hot loop.
        """
        while True:
            try:
                return await asyncio.to_thread(fn, *args)
            except Exception as exc:
                if not _transient(exc):
                    self.log.error("Inbound SMS watcher failed; restarting in %.0f s: %s", self.poll_interval, exc)
                    await asyncio.sleep(self.poll_interval)
                    raise
                self.log.warning("Reading inbound SMS failed; trying again in %.0f s: %s", self.poll_interval, exc)
            await asyncio.sleep(self.poll_interval)

    def replies(self, page: InboxPage, provider: str) -> list[tuple[Reply, int]]:
        """This connection's inbound messages in ``page``, with their inbox positions."""
        from smsrelay import Reply

        return [
            (e.event, e.position) for e in page.entries if isinstance(e.event, Reply) and e.event.provider == provider
        ]

    # -- Airflow >= 3.3: ack mode, one stream per cursor -------------------------
    def shared_stream_key(self) -> Hashable | None:
        if SharedStreamProducer is None:
            return None
        # The cursor is this watcher's own: a group has one subscriber, and a key per cursor.
        return ("smsrelay-inbound", self.sms_conn_id, self.inbox or "", self.cursor)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return _FeedProducer(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            if raw is None:  # a tick: moves the cursor past events that are not ours
                continue
            event = self.event_for(raw)
            if event is not None:
                yield event

    # -- older Airflow 3: the trigger's own loop ----------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook, client, feed = await self.open_feed()
        try:
            position = await self.call(self.start, feed)
            yielded_up_to: int | None = None
            while True:
                page = await self.call(self.read, feed, position)
                if yielded_up_to is not None:
                    # One poll after the yield: the triggerer has stored those events by now.
                    await asyncio.to_thread(feed.inbox.commit, self.cursor, yielded_up_to)
                for reply, _ in self.replies(page, client.provider.name):
                    event = self.event_for(reply)
                    if event is not None:
                        yield event
                yielded_up_to = page.position if page.position > position else None
                position = page.position
                if not page.more:
                    await asyncio.sleep(self.poll_interval)
        finally:
            client.close()
            hook.close()


if SharedStreamProducer is not None:

    class _FeedProducer(SharedStreamProducer):
        """The feed as a broker: yields ``(reply, position)`` and commits a position once its event is stored.

        After each read it yields a tick ``(None, page position)``: the filter skips
        it, which both moves the cursor past events that are not this trigger's
        (reports, other providers) and closes the last reply's binding window.
        """

        def __init__(self, trigger: SmsInboundTrigger) -> None:
            self.trigger = trigger
            self.committed = 0
            self._feed: Feed | None = None
            self._closers: list[Any] = []

        async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
            trigger = self.trigger
            hook, client, feed = await trigger.open_feed()
            self._closers = [client, hook]
            self._feed = feed
            position = self.committed = await trigger.call(trigger.start, feed)
            trigger.log.info(
                "Watching inbound SMS on %s from %d allowed sender(s), cursor %r at %d.",
                trigger.sms_conn_id,
                len(trigger.allow),
                trigger.cursor,
                position,
            )
            while True:
                page = await trigger.call(trigger.read, feed, position)
                for reply, at in trigger.replies(page, client.provider.name):
                    yield reply, at
                    await asyncio.sleep(0)  # let the filter drain before the next one
                position = page.position
                yield None, position
                if not page.more:
                    await asyncio.sleep(trigger.poll_interval)

        async def advance(self, batch: Sequence[AdvanceItem]) -> None:
            last = self.committed
            for item in batch:
                if not item.outcome.is_clean:
                    # Not confirmed stored: stop here; the group restarts from the committed cursor.
                    if last > self.committed:
                        await self._commit(last)
                    raise RuntimeError(
                        f"an inbound SMS event was not confirmed stored ({item.outcome}); "
                        f"cursor {self.trigger.cursor!r} stays at {self.committed} and reads it again"
                    )
                last = max(last, int(item.broker_payload))
            if last > self.committed:
                await self._commit(last)

        async def _commit(self, position: int) -> None:
            assert self._feed is not None
            await asyncio.to_thread(self._feed.inbox.commit, self.trigger.cursor, position)
            self.committed = position

        async def aclose(self) -> None:
            for closer in self._closers:
                closer.close()
