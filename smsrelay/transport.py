"""HTTP for provider adapters: one pooled session, timeouts, safe retries, rate limits.

Retries follow one rule: a request is repeated only when repeating it cannot send
an SMS twice. That is always true of a request that never reached the provider
(connection refused) and of a 429 (the provider dropped it), and true of any
request when the provider honours an idempotency key. Otherwise a failure after
the request was written raises ``TransportError(request_sent=True)`` or
``ProviderServerError``, and the client reconciles before it sends again.

>>> t = Transport("https://api.example.com", provider="example")
>>> t.url("/v2/sms")
'https://api.example.com/v2/sms'
"""

from __future__ import annotations

import bisect
import email.utils
import logging
import math
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests
import urllib3.exceptions

from smsrelay.clock import Clock, SystemClock
from smsrelay.departure import DepartureAdapter, departing
from smsrelay.errors import (
    AuthError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    ProviderServerError,
    RateLimited,
    SmsRelayError,
    TransportError,
)
from smsrelay.redaction import redact

__all__ = [
    "DEFAULT_ERRORS",
    "HEADROOM",
    "OTHER",
    "SERVER_ERROR",
    "ErrorRule",
    "Limiter",
    "RetryPolicy",
    "StatusTable",
    "Transport",
    "WindowLimiter",
    "default_error",
    "error_for_status",
    "json_object",
    "parse_retry_after",
]

log = logging.getLogger("smsrelay.transport")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
ErrorMapper = Callable[[requests.Response], SmsRelayError]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: exponential backoff with full jitter.

    ``max_wait`` caps one wait; a ``Retry-After`` beyond it is raised to the caller
    as ``RateLimited`` instead of blocking.
    """

    attempts: int = 5
    backoff: float = 0.25
    max_backoff: float = 20.0
    max_wait: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


# How far under a documented limit the default limiters pace: a request reaches the provider a
# little after its turn (threads, the network), and that delay must never put one more request
# than allowed into any of the provider's windows.
HEADROOM = 0.02


class TurnMissed(Exception):
    """Raised by :meth:`Limiter.departed`: the request reached its connection too long after its
    turn, and sent now it could meet later turns in the provider's window. Nothing was written;
    the transport takes a new turn and sends it then."""


class Limiter(Protocol):
    """What the transport asks of a rate limiter before each request."""

    def acquire(self) -> float:
        """Take one request's turn, waiting as needed; return the seconds waited."""
        ...

    def eta(self, calls: int) -> float:
        """Seconds until ``calls`` more requests have gone, from the limiter's state now."""
        ...

    def departed(self) -> None:
        """The request whose turn this thread took last is leaving now (its connection is open).

        May raise :class:`TurnMissed` (before anything is written) to have it take a new turn.
        """
        ...

    def book(self, calls: int) -> None:
        """``calls`` requests are ready to go: a limiter shared with other senders may take their turns now."""
        ...


class WindowLimiter:
    """At most ``limit`` requests in any ``window`` seconds: a provider's "N per period".

    A token bucket at 100/hour would allow 100 at once and then one every 36 s, which
    exceeds "100 requests/hour" in the first hour; a sliding window never does. A turn
    counts from when its request leaves (:meth:`departed`: after the connection is made),
    not from when it was taken, and the window is kept ``headroom`` longer than the
    provider's, so a request that arrives a little after it left still lands in the right one.

    >>> from smsrelay.clock import ManualClock
    >>> wl = WindowLimiter(2, 60, clock=ManualClock(), headroom=0); wl.acquire(), wl.acquire(), wl.acquire()
    (0.0, 0.0, 60.0)
    """

    def __init__(self, limit: int, window: float, *, clock: Clock, headroom: float = HEADROOM) -> None:
        self.limit = limit
        # A little longer than the provider's window: request 101 must arrive after request 1's hour.
        self.window = window * (1 + headroom)
        self._sent: list[datetime] = []  # the turns in the window, oldest first
        self._clock = clock
        self._lock = threading.Lock()
        self._mine = threading.local()  # the turn this thread took last, until its request leaves

    @classmethod
    def for_rate(cls, rate: float, *, clock: Clock) -> WindowLimiter:
        """``rate`` calls a second as a window: whole calls in any second, or one per 1/rate s.

        >>> w = WindowLimiter.for_rate(50_000 / 300, clock=SystemClock()); (w.limit, round(w.window, 2))
        (166, 1.02)
        """
        if rate >= 1:
            return cls(math.floor(rate), 1.0, clock=clock)
        return cls(1, 1 / rate, clock=clock)

    def eta(self, calls: int) -> float:
        """Seconds until ``calls`` more requests have gone, from the window's state now."""
        with self._lock:
            now = self._clock.now()
            live = [t for t in self._sent if (now - t).total_seconds() < self.window]
        windows = -(-(len(live) + calls) // self.limit) - 1
        return float(max(0, windows) * self.window)

    def acquire(self) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.now()
                while self._sent and (now - self._sent[0]).total_seconds() >= self.window:
                    del self._sent[0]
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self._mine.turn = now
                    return waited
                wait = self.window - (now - self._sent[0]).total_seconds()
            self._clock.sleep(wait)
            waited += wait

    def book(self, calls: int) -> None:
        """Nothing to book: this process's window has no other senders to queue behind."""

    def departed(self) -> None:
        """Count this thread's last turn from now: its request is leaving only now."""
        turn = getattr(self._mine, "turn", None)
        if turn is None:
            return
        self._mine.turn = None
        with self._lock:
            now = self._clock.now()
            i = bisect.bisect_left(self._sent, turn)
            if i < len(self._sent) and self._sent[i] == turn:
                del self._sent[i]
            bisect.insort(self._sent, max(now, turn))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (safe to repeat).

    Decided by exception type: urllib3 raises ``NewConnectionError`` (refused, no
    route, DNS failure) and ``ConnectTimeoutError`` only while connecting, before
    one byte of the request is written. Anything else may have been written.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0].reason if exc.args and isinstance(exc.args[0], urllib3.exceptions.MaxRetryError) else None
        never = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        return isinstance(reason, never)
    return False


class Transport:
    """One pooled ``requests.Session`` for one provider account.

    Every request (proxies, TLS, redirects, keep-alive) goes through requests' public
    API; the ``HTTPAdapter`` keeps up to ``pool_size`` connections alive, one per
    concurrent worker, and never retries on its own (the retry rule above decides).
    ``limiter`` paces the requests (default: ``rate_limit`` calls in any second, ``HEADROOM`` longer).
    ``error_mapper`` turns an error response into the provider's core error; the
    adapter supplies it because only the adapter knows its error bodies.
    """

    def __init__(
        self,
        base_url: str,
        *,
        provider: str,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        limiter: Limiter | None = None,
        pool_size: int = 16,
        error_mapper: ErrorMapper | None = None,
        verify: bool | str = True,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self.limiter: Limiter | None = limiter
        if limiter is None and rate_limit:
            # A window, not a bucket: a bucket of `rate` tokens can put twice the rate into one
            # second (a full bucket, then its refill), which a per-second limit refuses.
            self.limiter = WindowLimiter.for_rate(rate_limit, clock=self.clock)
        self.error_mapper = error_mapper
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._held = threading.local()  # a turn this thread took ahead of its next request
        self.session = requests.Session()
        # Its connections tell the limiter when a request leaves (smsrelay.departure).
        adapter = DepartureAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "smsrelay"
        if headers:
            self.session.headers.update(headers)
        if auth:
            self.session.auth = auth
        self.session.verify = verify
        self._environment_once()

    def _environment_once(self) -> None:
        """Read proxy and CA settings (``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``, …) once.

        requests scans the environment on every call; with one call per message that
        scan is the largest CPU cost of a bulk send. The settings are the same ones,
        taken when the transport is built.
        """
        env = self.session.merge_environment_settings(self.base_url, {}, None, self.session.verify, None)
        self.session.proxies.update(env.get("proxies") or {})
        self.session.verify = env.get("verify", self.session.verify)
        self.session.trust_env = False

    def __repr__(self) -> str:
        return f"Transport({redact(self.base_url)!r}, provider={self.provider!r})"

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def close(self) -> None:
        self.session.close()

    def take_turn(self) -> None:
        """Wait for the rate limit's turn now; this thread's next request goes on it."""
        if self.limiter is not None and not getattr(self._held, "turn", False):
            self.limiter.acquire()
            self._held.turn = True

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        ok: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send a request with retries; return a 2xx/3xx response or raise a core error.

        ``idempotent`` says whether repeating the request is safe; by default only
        GET, HEAD, OPTIONS, PUT and DELETE are. ``ok`` may accept other statuses
        (e.g. a 404 the adapter handles).
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self.url(path)
        attempt = 0
        while True:
            attempt += 1
            if self.limiter:
                if getattr(self._held, "turn", False):
                    self._held.turn = False  # taken ahead (take_turn)
                else:
                    self.limiter.acquire()
            self._count(1)
            try:
                resp = self._send(method, url, params=params, json=json, data=data, headers=headers)
            except TurnMissed:
                attempt -= 1  # nothing was written: not an attempt, and not a request
                self._count(-1)
                continue
            except requests.RequestException as exc:
                sent = not _never_sent(exc)
                err: SmsRelayError = TransportError(
                    f"{method} {redact(url)} failed: {type(exc).__name__}: {redact(str(exc))}",
                    request_sent=sent,
                    provider=self.provider,
                )
                if (safe or not sent) and attempt < self.retry.attempts:
                    self._pause(attempt, None, err)
                    continue
                raise err from None
            if log.isEnabledFor(logging.DEBUG):  # redacting costs a regex pass; only when shown
                log.debug("%s %s -> %s", method, redact(url), resp.status_code)
            if resp.status_code < 400 or (ok is not None and ok(resp)):
                return resp
            if resp.status_code == 429:
                wait = parse_retry_after(resp.headers.get("Retry-After"), self.clock.now())
                err = self._error(resp)
                if isinstance(err, RateLimited) and err.retry_after is None and wait is not None:
                    err.retry_after = timedelta(seconds=wait)
                # A 429 was not processed, so it is safe to repeat even a send.
                if attempt < self.retry.attempts and (wait is None or wait <= self.retry.max_wait):
                    self._pause(attempt, wait, err)
                    continue
                raise err
            if resp.status_code >= 500 and safe and attempt < self.retry.attempts:
                self._pause(attempt, parse_retry_after(resp.headers.get("Retry-After")), self._error(resp))
                continue
            raise self._error(resp)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self.limiter is None:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        with departing(self.limiter.departed):  # may raise TurnMissed before the request is written
            return self.session.request(method, url, timeout=self.timeout, **kwargs)

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.requests_made += n

    def _pause(self, attempt: int, retry_after: float | None, err: Exception) -> None:
        delay = self.retry.delay(attempt, retry_after)
        log.warning("%s: retry %d in %.2fs after %s", self.provider, attempt, delay, err)
        self.clock.sleep(delay)

    def _error(self, resp: requests.Response) -> SmsRelayError:
        if self.error_mapper is not None:
            return self.error_mapper(resp)
        return default_error(resp, self.provider)


def json_object(resp: requests.Response) -> dict[str, Any]:
    """An error body as a JSON object; ``{}`` when it is not one (HTML from a proxy, a list, …).

    >>> r = requests.Response(); r._content = b"<html>"; json_object(r)
    {}
    """
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def default_error(resp: requests.Response, provider: str) -> SmsRelayError:
    """A core error for an HTTP status, keeping the provider's text (``DEFAULT_ERRORS``)."""
    return error_for_status(DEFAULT_ERRORS, resp.status_code, provider=provider, text=redact(resp.text[:500]))


# -- status -> error tables ------------------------------------------------------------
# An adapter keeps its mapping as a module-level dict from status (or error code) to
# ErrorRule, readable as a table, the way courier's provider handlers keep theirs; the
# body parsing (which text, code, field) stays in the adapter, and error_for_status
# turns the status and that text into the error.
SERVER_ERROR = 500  # the key of the rule for every 5xx a table does not list by number
OTHER = "other"  # the key of the rule for every status a table does not list (before the defaults)


@dataclass(frozen=True)
class ErrorRule:
    """The error a status maps to: its class, its message and the field it names.

    ``message`` is a format string over ``status``, ``text`` (the provider's own words,
    redacted) and ``code`` (the provider's error code, or empty).
    """

    error: type[SmsRelayError]
    message: str
    field: str | None = None
    code: str | None = None


# Keys are HTTP statuses, or the provider's error codes where a code decides more than the
# status does (ME-SMS answers INSUFFICIENT_CREDITS whatever the status).
StatusTable = Mapping[int | str, ErrorRule]

# What every provider's status means when its table says nothing more specific.
DEFAULT_ERRORS: StatusTable = {
    401: ErrorRule(AuthError, "{provider} answered {status}: the credentials were refused; check the API key"),
    402: ErrorRule(InsufficientCredit, "{provider} answered {status}: not enough credit"),
    403: ErrorRule(AuthError, "{provider} answered {status}: the credentials were refused; check the API key"),
    404: ErrorRule(NotFound, "{provider} answered {status}: not found"),
    429: ErrorRule(RateLimited, "{provider} answered {status}: rate limited"),
    SERVER_ERROR: ErrorRule(ProviderServerError, "{provider} answered {status}: provider error"),
}
_REFUSED = ErrorRule(InvalidRequest, "{provider} answered {status}: the request was refused")


def error_for_status(
    table: StatusTable,
    status: int,
    *,
    provider: str,
    text: str | None,
    code: str | None = None,
    field: str | None = None,
    key: str | None = None,
    words: Mapping[str, str] | None = None,
    **extra: Any,
) -> SmsRelayError:
    """The core error: the table's rule for ``key`` (default: ``code``), else for the status, else the default's.

    A rule's own ``field`` wins over ``field`` (parsed from the body); ``words`` are more values for
    the message's format string; ``extra`` goes to the error's constructor (``retry_after``).

    >>> err = error_for_status({401: ErrorRule(AuthError, "refused ({status})")}, 401, provider="x", text="no")
    >>> type(err).__name__, err.message
    ('AuthError', 'refused (401)')
    """
    bucket = SERVER_ERROR if status >= 500 else status
    named = key if key is not None else code
    rule = (table.get(named) if named else None) or table.get(status) or table.get(bucket) or table.get(OTHER)
    rule = rule or DEFAULT_ERRORS.get(status) or DEFAULT_ERRORS.get(bucket) or _REFUSED
    message = rule.message.format(
        provider=provider, status=status, text=text or "", code=code or "", **(words or {})
    ).strip()
    kw: dict[str, Any] = {"provider": provider, "status_code": status, "provider_message": text, **extra}
    kw["code"] = rule.code or code
    if issubclass(rule.error, InvalidRequest):
        kw["field"] = rule.field or field
    return rule.error(message, **kw)
