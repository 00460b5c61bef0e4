"""One provider account's rate limit, shared by every process that sends through it.

Each worker's own :class:`~smsrelay.transport.WindowLimiter` paces only that worker:
four Airflow workers on one Kudosity account would send at four times its 15 calls
a second. :class:`SharedRateLimiter` keeps the account's bucket in PostgreSQL
instead, so processes on any host take their turns from one schedule. Set it with
the provider setting ``rate_limit_store`` (``SMSRELAY_RATE_LIMIT_STORE``)::

    kudosity:
      rate_limit_store: postgresql://smsrelay@db/smsrelay

How it works: one row per account holds the next free slot (GCRA, the "virtual
scheduling" form of a token bucket). Taking a turn is one ``UPDATE … RETURNING``,
so the row lock makes it atomic; every time is the database's clock, so workers on
hosts whose clocks disagree still agree on the schedule. A turn is a reservation:
the caller sleeps until its slot, and slots are evenly spaced (``burst`` 1 by
default: strict spacing stays within any "N per second" rule, however the provider
counts its windows). The spacing keeps ``headroom`` (6%) below the rate, because a
request that reaches the provider some milliseconds after its slot (the OS, the GIL, a
busy provider, the network's jitter) must not share the provider's one-second window
with the request ``rate`` slots later: at 15/s, 6% absorbs 64 ms. Three quarters of it
(48 ms) is for the process to reach its turn; a turn reached later than that (a CPU
stall) is left unused and another taken. The rest is for the trip to the provider. The
row's key is the provider and a SHA-256 of the account's credentials; the key itself is
never stored.

A send books the turns of the requests it has ready as one block (:meth:`book`, up to
two seconds of the account's rate), so senders on one account take turns first come,
first served by block rather than one request each. Airflow shards of one campaign then
end one after another, not all together, and the account stays busy while the next
shard's task starts; another sender waits at most one block for its turn.

One ``UPDATE`` per block costs well under a millisecond on a nearby server, against
67 ms between requests at 15/s. A booked turn that is not used (its process died, or
its workers were all busy past it) is lost to every other worker, so a block holds only
the requests a send has ready.

>>> limiter = SharedRateLimiter("postgresql://smsrelay@db/smsrelay", account="kudosity:0f3c", rate=15)
>>> limiter  # doctest: +ELLIPSIS
SharedRateLimiter('postgresql://smsrelay@db/smsrelay', account='kudosity:0f3c', rate=15)
>>> limiter.acquire()  # doctest: +SKIP
0.0
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsrelay.clock import Clock, SystemClock
from smsrelay.errors import ConfigError, TransportError
from smsrelay.redaction import redact, register_secret

if TYPE_CHECKING:
    from smsrelay.config import ProviderSettings

__all__ = ["Grant", "SharedRateLimiter", "account_key", "register_dsn", "shared_limiter"]

log = logging.getLogger("smsrelay.shared_limit")

# Any constant: serialises the first CREATE TABLE of processes that start together.
_SCHEMA_LOCK = 0x5E5_1B0D
_SCHEMA = """CREATE TABLE IF NOT EXISTS smsrelay_rate_limits (
    account TEXT PRIMARY KEY,
    next_slot TIMESTAMPTZ NOT NULL)"""
# One statement, one row lock: read the slot, move it on by ``turns`` slots, return both clocks.
# A bucket idle for a while may hold up to ``burst`` turns of credit, never more.
_TAKE = """WITH now AS (SELECT clock_timestamp() AS t)
UPDATE smsrelay_rate_limits
SET next_slot = GREATEST(next_slot, now.t - make_interval(secs => %(credit)s))
    + make_interval(secs => %(span)s)
FROM now
WHERE account = %(account)s
RETURNING next_slot, now.t"""
# Of the headroom, the share a turn may be reached late; the rest is the trip's jitter.
_LATE_SHARE = 0.75
# The longest block of turns one send books at once, in seconds of the account's rate.
_MAX_BLOCK = 2.0


def register_dsn(dsn: str | None) -> None:
    """Register a connection string's password with redaction, so no error or log shows it."""
    if not dsn:
        return
    with contextlib.suppress(ValueError):
        register_secret(urlsplit(dsn).password)


def account_key(provider: str, credentials: Iterable[str | None]) -> str:
    """The bucket's name for one account: the provider and a hash of what identifies the account.

    Two processes with the same credentials share a bucket; the credentials are not stored.

    >>> account_key("kudosity", ["k-123456", None])
    'kudosity:a94d6b60d4389748'
    """
    digest = hashlib.sha256("\x1f".join(c or "" for c in credentials).encode()).hexdigest()
    return f"{provider}:{digest[:16]}"


@dataclass(frozen=True)
class Grant:
    """One turn: when it may be used (``at``, the database's clock) and how long to wait for it."""

    at: datetime
    wait: float


class SharedRateLimiter:
    """A token bucket in PostgreSQL: at most ``rate`` calls a second for ``account``, across processes.

    Implements the transport's ``Limiter`` protocol. The schedule's times all come from
    the database; ``clock`` only sleeps and tells how late a turn was reached.
    Thread-safe; one connection, opened on first use.

    >>> SharedRateLimiter("postgresql://app:pw@db/x", account="kudosity:0f3c", rate=15)
    SharedRateLimiter('postgresql://app:***@db/x', account='kudosity:0f3c', rate=15)
    """

    def __init__(
        self,
        dsn: str,
        *,
        account: str,
        rate: float,
        burst: int = 1,
        headroom: float = 0.06,
        provider: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 <= headroom < 1:
            raise ValueError("headroom is a fraction of the rate, from 0 to below 1")
        register_dsn(dsn)
        self._dsn = dsn
        self.account = account
        self.rate = rate
        self.burst = burst
        # Seconds between two turns.
        self.interval = 1.0 / (rate * (1.0 - headroom))
        # What the headroom absorbs: how late a request may reach the provider (in its one-second
        # window, or one turn's, if longer) and still not meet the turn `rate` slots after it.
        slack = headroom / (1.0 - headroom) * max(1.0, 1.0 / rate)
        self.late_after = _LATE_SHARE * slack
        self.max_block = max(1, int(_MAX_BLOCK / self.interval))
        self.provider = provider
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._booked: collections.deque[datetime] = collections.deque()  # this process's turns, by our clock
        self._mine = threading.local()  # when this thread's last turn was due, until its request leaves
        self._conn: Any = None

    def __repr__(self) -> str:
        return f"SharedRateLimiter({redact(self._dsn)!r}, account={self.account!r}, rate={self.rate:g})"

    # -- the Limiter protocol ---------------------------------------------------
    def acquire(self) -> float:
        """Take one turn, the next booked one or else one from the shared schedule; sleep until it comes.

        Returns the seconds waited. A turn this process reaches more than ``late_after``
        seconds after its slot (a CPU stall, a slow round trip) is not used: sent then, it
        would meet the turns after it in the provider's window. It is left unused and the
        next one taken.
        """
        waited = 0.0
        while True:
            due = self._next_booked()
            if due is None:
                asked = self._clock.now()
                due = asked + timedelta(seconds=self.reserve().wait)
            wait = (due - self._clock.now()).total_seconds()
            if wait > 0:
                self._clock.sleep(wait)
                waited += wait
            late = (self._clock.now() - due).total_seconds()
            if late <= self.late_after:
                self._mine.due = due
                return waited
            log.debug("shared rate limit: reached a turn %.3f s late; taking a new one", late)

    def book(self, calls: int) -> None:
        """Take the turns of ``calls`` requests about to be made now, as one block (at most ``max_block``).

        :meth:`acquire` hands them out in order; the send's other requests take turns one by one.
        """
        calls = min(calls, self.max_block)
        if calls < 1:
            return
        asked = self._clock.now()
        first, now = self._take(calls)
        slots = (first + timedelta(seconds=k * self.interval) for k in range(calls))
        self._booked.extend(asked + max(timedelta(0), at - now) for at in slots)

    def _next_booked(self) -> datetime | None:
        try:
            return self._booked.popleft()  # atomic: each booked turn goes to one thread
        except IndexError:
            return None

    def departed(self) -> None:
        """Refuse a turn its request reaches too late, as :meth:`acquire` does, now that it leaves.

        Between the turn and the request's first byte come its preparing and, in a new task
        process, its connection's handshake; later than ``late_after`` it raises
        ``TurnMissed`` (nothing is written), and the transport takes a new turn.
        """
        due: datetime | None = getattr(self._mine, "due", None)
        if due is None:
            return
        self._mine.due = None
        late = (self._clock.now() - due).total_seconds()
        if late > self.late_after:
            # Imported here: the transport loads requests, which a DAG file importing smsrelay must not.
            from smsrelay.transport import TurnMissed

            log.debug("shared rate limit: a request left %.3f s after its turn; taking a new one", late)
            raise TurnMissed(f"left {late:.3f} s after its turn")

    def eta(self, calls: int) -> float:
        """Seconds until ``calls`` more requests have gone: the turns already taken, then ours."""
        row = self._run("SELECT next_slot, clock_timestamp() FROM smsrelay_rate_limits WHERE account = %s")
        queued = max(0.0, (row[0] - row[1]).total_seconds()) if row else 0.0
        return queued + max(0, calls - self.burst) * self.interval

    # -- the bucket ------------------------------------------------------------
    def reserve(self) -> Grant:
        """Take the next turn without waiting for it: when it comes, by the database's clock.

        Raises ``TransportError`` (nothing was sent) when the store cannot be reached.
        """
        at, now = self._take(1)
        return Grant(at=at, wait=(at - now).total_seconds())

    def _take(self, turns: int) -> tuple[datetime, datetime]:
        """Move the schedule on by ``turns`` slots; the first one's time (not before now) and now."""
        params = {
            "account": self.account,
            "span": turns * self.interval,
            "credit": (self.burst - 1) * self.interval,
        }
        row = self._run(_TAKE, params)
        if row is None:  # the first turn of a new account: create its row, then take again
            self._run(
                "INSERT INTO smsrelay_rate_limits (account, next_slot) VALUES (%s, '-infinity') "
                "ON CONFLICT (account) DO NOTHING"
            )
            row = self._run(_TAKE, params)
            assert row is not None
        next_slot, now = row
        return max(next_slot - timedelta(seconds=turns * self.interval), now), now

    def close(self) -> None:
        """Close the connection (the next turn opens a new one); turns booked and not used are let go."""
        self._booked.clear()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "a shared rate limit needs psycopg; install smsrelay[server]", field="rate_limit_store"
            ) from None
        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        with conn.transaction():
            # Workers may start together; the lock makes CREATE IF NOT EXISTS safe.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_SCHEMA)
        return conn

    def _run(self, sql: str, params: Any = None) -> Any:
        """One statement on the shared connection, once more on a new one if it died; the first row."""
        import psycopg

        params = params if params is not None else (self.account,)
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    cur = self._conn.execute(sql, params)
                    return cur.fetchone() if cur.description else None
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    broken, self._conn = self._conn, None
                    if broken is not None:
                        broken.close()
                    if attempt == 2 or broken is None:  # a fresh connection failed: the store is down
                        raise TransportError(
                            f"the shared rate limit store {redact(self._dsn)!r} cannot be reached: "
                            f"{redact(str(exc))}; nothing was sent",
                            provider=self.provider,
                        ) from None
                    log.warning("shared rate limit: the database connection was lost; retrying on a new one")
        raise AssertionError("unreachable")


def shared_limiter(
    settings: ProviderSettings, provider: str, base_url: str, rate: float | None, clock: Clock | None = None
) -> SharedRateLimiter | None:
    """The account's shared limiter when ``settings.rate_limit_store`` names one (and a rate applies).

    The account is the provider, its base URL, API key and account id (Kaleyra's ``sid``):
    two accounts never share a bucket, and every worker of one account does.

    >>> from smsrelay.config import ProviderSettings
    >>> shared_limiter(ProviderSettings("kudosity", api_key="k-1"), "kudosity", "https://x", 15.0) is None
    True
    """
    if not settings.rate_limit_store or not rate:
        return None
    account = account_key(provider, (base_url, settings.api_key, settings.option("sid")))
    return SharedRateLimiter(settings.rate_limit_store, account=account, rate=rate, provider=provider, clock=clock)
