"""``sync --follow``: write events into Salesforce seconds after they reach the receiver.

The follower reads the receiver's inbox feed through its own named cursor (the core's
durable ``Client.feed(name)``; with a routing config, the inbox every account's events meet
in, each account polled into it first), gathers events into a batch until it holds
``limits.follow_batch`` records or its first event has waited ``limits.follow_wait``
seconds, writes the batch with the same folding and upserts as a sync's pull, and only
then commits the cursor. A crash re-delivers at most the batch in hand, and replaying it
changes nothing (every write is an upsert by External ID under the merge rule).

It stays under the API ceiling two ways: it pauses while the org's usage is above
``limits.api_ceiling``, and it paces its writes with a token bucket that refills at the rate
that makes the calls left under the ceiling last a day, holding 1% of them for bursts; a
busier feed then makes fuller batches rather than more calls.

>>> Follower(bridge).run(stop=threading.Event())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from smsrelay import ConfigError
from smsrelay_salesforce.org import BudgetExceeded
from smsrelay_salesforce.pull import Puller, Window
from smsrelay_salesforce.summary import Summary
from smsrelay_salesforce.sync import Bridge

__all__ = ["DEFAULT_CURSOR", "Follower"]

log = logging.getLogger("smsrelay.salesforce.follow")

DEFAULT_CURSOR = "smsrelay-salesforce"
# Salesforce counts API requests over a rolling 24 hours (REST API Developer Guide, "API
# Request Limits and Allocations").
_DAY = 86_400.0


class Follower:
    """Follow the feed and write each batch as it fills (see the module docs).

    ``bridge`` is a :class:`~smsrelay_salesforce.sync.Bridge`; ``on_batch`` is called with
    each written batch's summary (the CLI prints it).
    """

    def __init__(
        self,
        bridge: Bridge,
        *,
        cursor: str = DEFAULT_CURSOR,
        idle: float = 0.2,
        on_batch: Callable[[Summary], None] | None = None,
    ) -> None:
        router = bridge.router
        if router is not None and router.inbox is None:
            # Without an inbox, no receiver stores the accounts' pushes: there is nothing to follow.
            raise ConfigError(
                "sync --follow reads the receiver's inbox: with a routing config, set sms.inbox (or "
                "SMSRELAY_INBOX) to the inbox that `smsrelay webhooks serve --config` fills",
                field="sms.inbox",
                file=bridge.config.source,
            )
        self.bridge = bridge
        self.feed = bridge.client.feed(cursor)
        self.inbox = bridge.client.inbox
        # Routed, every account is polled into the shared inbox (Kaleyra: its watched sends).
        self.pump: Callable[..., int] = router.pump if router is not None else self.feed.pump
        self.cursor = cursor
        self.idle = idle
        self.on_batch = on_batch
        self.clock = bridge.clock
        limits = bridge.config.limits
        self.batch_size = limits.follow_batch
        self.wait = limits.follow_wait
        self.page = min(limits.event_page, max(self.batch_size, 1))
        self._tokens = 0.0
        self._filled_at: datetime | None = None

    def __repr__(self) -> str:
        return f"Follower(cursor={self.cursor!r}, bridge={self.bridge!r})"

    def run(self, stop: threading.Event) -> Summary:
        """Write batches until ``stop`` is set; return the totals."""
        self.bridge.preflight()
        total = Summary()
        while not stop.is_set():
            try:
                batch = self.batch(stop)
            except BudgetExceeded as exc:
                log.warning("%s", exc.message)
                total.paused = exc.message
                self.clock.sleep(60.0)
                continue
            if batch.events:
                total.add(batch)
                if self.on_batch:
                    self.on_batch(batch)
            else:
                self.clock.sleep(self.idle)
        return total

    def batch(self, stop: threading.Event | None = None) -> Summary:
        """Gather one batch (by size or by time), write it, then commit the cursor.

        Returns the batch's summary; ``events`` is 0 when nothing arrived. If the write
        fails, nothing is committed and the next batch starts from the same position.
        """
        summary = Summary()
        window = Window()
        # Read by position and commit explicitly (not Feed.read, which commits the page
        # before on its next call): a batch that fails must leave the cursor where it was.
        position = self.inbox.position(self.cursor)
        first: datetime | None = None
        while True:
            self.pump(limit=self.page)  # a polling provider's events join the pushed ones
            page = self.inbox.read_after(position, self.page)
            for event in page.events:
                window.add(event)
            position = page.position
            if window.events and first is None:
                first = self.clock.now()
            if window.size() >= self.batch_size:
                break
            if first is None and not page.more:
                return summary  # nothing waiting
            if first is not None and (self.clock.now() - first).total_seconds() >= self.wait:
                break
            if not page.more:
                if stop is not None and stop.is_set():
                    break
                self.clock.sleep(min(self.idle, self.wait))
        self._pace()
        self._write(window, position, summary)
        return summary

    def _pace(self) -> None:
        """Wait until the budget allows the next write; raise ``BudgetExceeded`` above the ceiling.

        A token bucket on the calls left under the ceiling: it refills at the rate that makes
        them last a day, and holds 1% of them (at least 10) so a burst is written at once.
        """
        org = self.bridge.org
        org.check_budget()
        rate, cap = self._budget()
        if rate is None:
            return
        now = self.clock.now()
        if self._filled_at is not None:
            self._tokens = min(cap, self._tokens + rate * (now - self._filled_at).total_seconds())
        else:
            self._tokens = cap
        self._filled_at = now
        if self._tokens < 1:
            wait = (1 - self._tokens) / rate
            log.info("pacing Salesforce writes: %.1fs before the next batch keeps under the API ceiling", wait)
            self.clock.sleep(wait)
            self._tokens = 1.0
            self._filled_at = self.clock.now()

    def _budget(self) -> tuple[float | None, float]:
        """Calls a second that last the day, and the burst allowance; (None, 0) before usage is known."""
        org = self.bridge.org
        if org.used is None or not org.total:
            return None, 0.0
        left = max(0.0, org.total * self.bridge.config.limits.api_ceiling - org.used)
        return max(left, 1.0) / _DAY, max(10.0, left / 100)

    def _write(self, window: Window, position: int, summary: Summary) -> None:
        bridge = self.bridge
        before = dict(bridge.org.phase_calls)
        puller = Puller(bridge.org, bridge.client, bridge.config, bridge.state)
        summary.events = window.events
        applied = puller.apply(window, summary)
        bridge.state.remember(applied)
        for phase, n in bridge.org.phase_calls.items():
            summary.add_calls(phase, n - before.get(phase, 0))
        self._tokens -= summary.total_calls
        if summary.event_write_failed:
            # Refused for good (e.g. a validation rule): keep the cursor, so the batch is
            # tried again once fixed; no event is dropped.
            summary.errors.append("the event cursor was not advanced; the refused writes are retried")
            return
        self.inbox.commit(self.cursor, position)
