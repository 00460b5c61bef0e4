"""One event feed over push and pull: what the receiver stored and what polling finds.

Both paths land in the same :class:`~smsrelay.inbox.Inbox`. Polling appends each
page with the provider's cursor in the same transaction (so a restart neither
replays nor skips), duplicates across the two paths collapse on ``event_id``, and
the inbox applies the lifecycle merge rule (a late ``sent`` never follows
``delivered``). A reader then drains the inbox with a named, durable cursor:

>>> feed = Feed(provider, open_inbox("inbox.db"), name="bridge")  # doctest: +SKIP
>>> page = feed.read()  # doctest: +SKIP
>>> handle(page.events); feed.commit(page)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from smsrelay.errors import InvalidRequest, NotFound, Unsupported
from smsrelay.inbox import Inbox
from smsrelay.providers.base import EventPage, Provider

__all__ = ["CURSOR_PREFIX", "Feed", "default_inbox_url", "follows_sends", "inbox_position", "lists_events"]

log = logging.getLogger("smsrelay.feed")

CURSOR_PREFIX = "inbox:"


def default_inbox_url(env: Mapping[str, str] | None = None) -> str:
    """``SMSRELAY_INBOX``, else an SQLite file in the user's state directory.

    ``env`` stands for the whole environment (default: ``os.environ``).

    >>> default_inbox_url({"SMSRELAY_INBOX": "sqlite:///tmp/in.db"})
    'sqlite:///tmp/in.db'
    """
    environ = os.environ if env is None else env
    url = environ.get("SMSRELAY_INBOX")
    if url:
        return url
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "smsrelay" / "inbox.db")


def lists_events(provider: Provider) -> bool:
    """True when the adapter can list events (``poll_events``); else only look up by id.

    >>> lists_events(SandboxProvider(settings))  # doctest: +SKIP
    True
    """
    return provider.capabilities.event_poll


def follows_sends(provider: Provider) -> bool:
    """True when the feed must remember sent message ids: the provider reports by id only.

    Either it cannot list events at all (Kaleyra: the feed asks ``status``), or its
    event listing needs the ids handed over (Kudosity V1: ``follow_sends``).

    >>> follows_sends(SandboxProvider(settings))  # doctest: +SKIP
    False
    """
    if provider.capabilities.follow_sends:
        return True
    return not lists_events(provider) and provider.capabilities.status_poll


def inbox_position(cursor: str | None) -> int:
    """The inbox position in a feed cursor (``inbox:<n>``); 0 for None.

    >>> inbox_position("inbox:42")
    42
    """
    if cursor is None or cursor == "":
        return 0
    text = cursor[len(CURSOR_PREFIX) :] if cursor.startswith(CURSOR_PREFIX) else ""
    if not text.isdigit():
        raise InvalidRequest(f"{cursor!r} is not a feed cursor; pass a page's cursor back as it was", field="since")
    return int(text)


class Feed:
    """The unified feed of one provider account, read through one named cursor.

    ``poll`` says whether to pull from the provider too; by default it does when
    the adapter can poll, and relies on pushes alone when it cannot.
    """

    def __init__(
        self,
        provider: Provider,
        inbox: Inbox,
        *,
        name: str = "default",
        poll: bool | None = None,
        max_poll_pages: int = 20,
        account: str | None = None,
        sole_account: bool = True,
    ) -> None:
        self.provider = provider
        self.inbox = inbox
        self.name = name
        self.poll = poll
        self.max_poll_pages = max_poll_pages
        # ``account`` (a router's account) is stored with the events it polls, and keeps its own
        # poll cursor: two accounts of one provider list different events.
        self.account = account
        self.source = f"poll:{provider.name}" + (f"@{account}" if account else "")
        # Its provider's only account goes on from the provider's poll cursor, and follows the sends
        # recorded without an account; one of several follows only the sends recorded as its own.
        self.sole_account = sole_account
        self._watcher = None if sole_account else account
        self._pending: int | None = None

    def __repr__(self) -> str:
        return f"Feed(provider={self.provider.name!r}, name={self.name!r}, inbox={self.inbox!r})"

    def pump(self, *, limit: int = 500) -> int:
        """Poll the provider into the inbox from the stored poll cursor; return how many were new.

        >>> Feed(provider, inbox).pump()  # doctest: +SKIP
        3
        """
        if self.poll is False:
            return 0
        if not lists_events(self.provider):
            return self._pump_status(limit)
        added = 0
        cursor = self.inbox.source_cursor(self.source)
        if cursor is None and self.account and self.sole_account:
            cursor = self.inbox.source_cursor(f"poll:{self.provider.name}")
        # Sends the adapter must follow: handed over, then kept in its cursor.
        handed = self._hand_over(limit)
        for _ in range(self.max_poll_pages):
            try:
                page = self.provider.poll_events(cursor, limit=limit)
            except Unsupported:
                if self.poll:
                    raise
                self.poll = False  # push-only provider: the receiver fills the inbox
                return added
            added += self.inbox.append(page.events, source=(self.source, page.cursor), account=self.account).added
            if handed:  # now durable in the stored cursor; a crash before this re-hands them, harmlessly
                self.inbox.unwatch(self.provider.name, handed)
                handed = []
            if not page.more or page.cursor == cursor:
                break
            cursor = page.cursor
        return added

    def _hand_over(self, limit: int) -> list[str]:
        """Give a ``follow_sends`` adapter the sends recorded in the inbox; return their ids."""
        if not self.provider.capabilities.follow_sends:
            return []
        # Rows are per recipient (500 a V1 send): take many, the adapter keeps one entry per send.
        watched = list(self.inbox.watched(self.provider.name, max(limit, 50_000), account=self._watcher))
        if watched:
            self.provider.follow_sends(watched)
        return watched

    def _pump_status(self, limit: int) -> int:
        """Ask for the status of each watched message; stop watching the settled ones."""
        if not self.provider.capabilities.status_poll:
            return 0
        watched = self.inbox.watched(self.provider.name, limit, account=self._watcher)
        if not watched:
            return 0
        try:
            reports = self.provider.status(list(watched))
        except NotFound:
            reports = []
            for mid in watched:  # one unknown id must not hide the others' reports
                try:
                    reports.extend(self.provider.status([mid]))
                except NotFound:
                    self.inbox.unwatch(self.provider.name, [mid])
        # Some status APIs do not say the number; the send did.
        reports = [r if r.phone else replace(r, phone=watched.get(r.message_id or "") or "") for r in reports]
        added = self.inbox.append(reports, account=self.account).added
        self.inbox.unwatch(self.provider.name, [r.message_id for r in reports if r.final and r.message_id])
        return added

    def watch(self, messages: Mapping[str, str | None]) -> None:
        """Follow messages sent elsewhere (id → phone) through status polling, where needed."""
        if follows_sends(self.provider):
            self.inbox.watch(self.provider.name, messages, account=self.account)

    def read(self, limit: int = 500) -> EventPage:
        """Events after this feed's committed cursor; the previous page read here is committed first.

        Reading the next page acknowledges the last one, so a loop of ``read()``
        is at-least-once: a crash re-delivers at most the page in hand.
        """
        if self._pending is not None:
            self.inbox.commit(self.name, self._pending)
            self._pending = None
        self.pump(limit=limit)
        page = self.inbox.read(self.name, limit)
        self._pending = page.position
        return EventPage(page.events, f"{CURSOR_PREFIX}{page.position}", page.more)

    def read_since(self, since: str | None, limit: int = 500) -> EventPage:
        """Events after a cursor the caller keeps (``page.cursor`` of the last call)."""
        position = inbox_position(since)
        self.pump(limit=limit)
        page = self.inbox.read_after(position, limit)
        return EventPage(page.events, f"{CURSOR_PREFIX}{page.position}", page.more)

    def commit(self, page: EventPage | str | None = None) -> None:
        """Acknowledge events up to ``page`` (a page or its cursor); default: the last page read."""
        if page is None:
            if self._pending is None:
                return
            position = self._pending
        else:
            position = inbox_position(page if isinstance(page, str) else page.cursor)
        self.inbox.commit(self.name, position)
        if self._pending is not None and self._pending <= position:
            self._pending = None
