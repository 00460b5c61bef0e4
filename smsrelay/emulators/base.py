"""The emulator kit: a provider's wire API as a real HTTP(S) server on loopback.

An emulator subclass declares routes with :func:`route`; the kit serves them on a
random free port, records every request, injects faults, runs timed events on an
injectable clock, and pushes webhooks with retries (at least once, like providers).

It is built on the standard library's HTTP server, not an ASGI stack, because
fault injection needs the raw socket: a reset after the request was accepted
must reach the client as a TCP RST with no response bytes.

>>> class Hello(Emulator):
...     name = "hello"
...     @route("GET", "/hello")
...     def hello(self, req):
...         return json_response({"hello": "world"})
>>> with Hello() as emu:  # doctest: +SKIP
...     requests.get(emu.url + "/hello").json()
{'hello': 'world'}

Control API (for users of ``smsrelay emulate`` and for subprocess tests), under
``/_emulator/``: ``GET requests``, ``DELETE requests``, ``GET state``,
``POST faults`` (a :class:`Fault` as JSON), ``DELETE faults``,
``POST clock/advance`` (``{"seconds": n}``), ``GET pushes``, ``POST reset``; and the
same event calls on every emulator, each in its provider's own wire terms:
``POST replies`` (``{"from", "text", "to"?}``), ``POST link-hits`` (``{"phone", "url"?}``),
``POST opt-outs`` (``{"phone"}``) and ``GET messages`` (one row per recipient sent to).
A provider without such an event answers 501 saying so. ``GET stats`` counts the API
requests and the 429s (:meth:`Emulator.stats`); ``POST rate_limit`` sets the limit
(``{"limit": n, "window": seconds}``, ``{"limit": null}`` for none, ``{"documented": true}``).

Realism, off by default: ``latency`` (± uniform ``jitter``, reproducible with ``seed``) is
waited on the emulator's clock before each API response is written, and ``rate_limit``
enforces a :class:`RateLimit` (``True``: the one the provider documents, the class's
``documented_rate_limit``) with the provider's own 429. Control calls are exempt from both.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import json
import logging
import math
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

import requests

from smsrelay.clock import Clock, ManualClock, SystemClock
from smsrelay.webhooks import find_header

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "ControlUnsupported",
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "Fault",
    "FaultCase",
    "Push",
    "RateLimit",
    "fault_matrix",
    "json_response",
    "route",
]

log = logging.getLogger("smsrelay.emulators")

Handler = Callable[..., "EmuResponse"]
F = TypeVar("F", bound=Callable[..., Any])


def route(method: str, pattern: str) -> Callable[[F], F]:
    """Declare an emulator method as the handler of ``method`` on a path regex.

    Named groups in the pattern become keyword arguments of the handler.
    """

    def mark(fn: F) -> F:
        fn.__emulator_route__ = (method.upper(), pattern)  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True)
class EmuRequest:
    """A request as the emulator received it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime

    @property
    def params(self) -> dict[str, str]:
        """Query parameters (the last value of a repeated name wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def header(self, name: str, default: str | None = None) -> str | None:
        return find_header(self.headers, name, default)

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` if it is not."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields."""
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", "replace"),
            "received_at": self.received_at.isoformat(),
        }


@dataclass
class EmuResponse:
    """A response to send back."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> EmuResponse:
    """A JSON response with the right content type."""
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return EmuResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


@dataclass
class Fault:
    """One injected fault, applied to the next ``times`` matching requests.

    ``kind``: ``status`` (answer ``status``/``body``/``headers``), ``rate_limit``
    (429, with ``Retry-After: retry_after`` if set), ``delay`` (wait ``seconds`` of
    real time, then answer normally), ``reset_before`` (reset the connection before
    handling: nothing happened), ``reset_after`` (handle the request, then reset
    instead of answering: it happened, but the client cannot know), ``status_after``
    (handle the request, then answer ``status``: a 5xx after the provider accepted),
    ``timeout_after`` (handle the request, then hold the answer ``seconds`` of real time,
    past the client's read timeout, and reset).
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    seconds: float = 0.0

    KINDS: ClassVar[frozenset[str]] = frozenset(
        {"status", "rate_limit", "delay", "reset_before", "reset_after", "status_after", "timeout_after"}
    )

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(self.KINDS)}")

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not re.fullmatch(self.path, path))


@dataclass(frozen=True)
class FaultCase:
    """One cell of the fault matrix: the faults a send meets, and how far the provider's list lags."""

    name: str
    faults: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    lag: float = 0.0


def fault_matrix(
    *, lags: Sequence[float] = (0, 3, 8, 30), timeout: float = 0.5, retry_after: float = 7
) -> list[FaultCase]:
    """Every network fault a send can meet, at each list lag (seconds on the emulator's clock).

    ``timeout`` is how long ``timeout_after`` holds an answer: longer than the client's
    read timeout; ``retry_after`` is the 429's hint (short where the wait is real). Run each
    case on a fresh emulator with :meth:`Emulator.inject_case`, send, then count the messages
    per recipient: none twice, and none lost without a word.

    >>> [c.name for c in fault_matrix(lags=[0])][:3]
    ['no fault, lag 0 s', 'reset before the request is handled, lag 0 s', 'reset after accept, lag 0 s']
    """
    faults: list[tuple[str, tuple[tuple[str, Mapping[str, Any]], ...]]] = [
        ("no fault", ()),
        ("reset before the request is handled", (("reset_before", {}),)),
        ("reset after accept", (("reset_after", {}),)),
        ("timeout after accept", (("timeout_after", {"seconds": timeout}),)),
        ("5xx after accept", (("status_after", {"status": 503}),)),
        ("429 with Retry-After", (("rate_limit", {"retry_after": retry_after}),)),
        ("429 beyond the client's wait", (("rate_limit", {"retry_after": 600, "times": 50}),)),
    ]
    return [FaultCase(f"{name}, lag {lag:g} s", fs, lag) for lag in lags for name, fs in faults]


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` API requests in any ``per`` seconds of emulator time, per account.

    Enforced as a sliding window (a log of the accepted requests' arrival times): the
    strictest reading of "N per period", under which a client that keeps to the number is
    never refused, and one that bursts is. No provider here documents its algorithm, so each
    ``documented_rate_limit`` marks this as an assumption. Refused requests do not count.
    ``retry_after``: the provider's 429 carries ``Retry-After``, in whole seconds until the
    oldest request leaves the window. ``source`` cites where the numbers come from.

    >>> RateLimit(100, 3600, retry_after=True).describe()
    '100 requests per 3600 s (429 with Retry-After)'
    """

    requests: int
    per: float  # seconds
    retry_after: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int) or self.requests < 1:
            raise ValueError(f"a rate limit allows at least 1 request, got {self.requests!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise ValueError(f"a rate limit's period is a positive number of seconds, got {self.per!r}")

    def describe(self) -> str:
        hint = "429 with Retry-After" if self.retry_after else "429, no Retry-After"
        return f"{self.requests} requests per {self.per:g} s ({hint})"

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "per": self.per, "retry_after": self.retry_after, "source": self.source}


class _SlidingWindow:
    """The arrival times of the requests each account had accepted within the last ``per`` seconds.

    Kept sorted: a request is stamped as it arrives, before it takes the emulator's lock, so
    two that arrive together may be counted in either order; each is judged by the requests
    that arrived in the ``per`` seconds before it, as a provider's edge would judge it.
    """

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._logs: dict[str, list[datetime]] = {}

    def admit(self, account: str, now: datetime) -> float | None:
        """Count a request that arrives at ``now``; or, over the limit, the seconds until a slot frees."""
        log_ = self._logs.setdefault(account, [])
        per = timedelta(seconds=self.limit.per)
        del log_[: bisect.bisect_right(log_, now - per)]  # left the window of this and every later arrival
        before = bisect.bisect_right(log_, now)  # those that arrived before it, all within its window
        if before >= self.limit.requests:
            return self.limit.per - (now - log_[before - self.limit.requests]).total_seconds()
        bisect.insort(log_, now)
        return None


@dataclass
class _Counts:
    requests: int = 0
    rate_limited: int = 0
    first: datetime | None = None
    last: datetime | None = None


@dataclass
class Push:
    """A webhook the emulator delivered (or is still trying to)."""

    url: str
    method: str
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    delivered: bool = False
    last_status: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    emulator: Emulator
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection error from %s", client_address, exc_info=True)


class _Reset(Exception):
    """Abort the connection with a TCP RST."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, every keep-alive request
    # would wait ~40 ms for a delayed ACK, and a client would look slower than it is.
    # Production servers (nginx, Kestrel, uvicorn) set TCP_NODELAY too.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.server.emulator.name, *args)

    def _handle(self) -> None:
        emu = self.server.emulator
        arrived = emu.clock.now()  # at the edge, as a provider stamps it: before the body is read
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = EmuRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k: v for k, v in self.headers.items()},
            body=body,
            received_at=arrived,
        )
        try:
            resp = emu.dispatch(req)
        except _Reset:
            self._reset()
            return
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json", **resp.headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (OPTIONS, TRACE, QUERY…) reaches dispatch too, so a route answers
        # 405 to a method it does not serve, as the providers do, instead of the stdlib's 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class Emulator:
    """Base of every provider emulator. Subclasses declare routes with :func:`route`.

    ``clock`` drives simulated time (delivery reports, lag); ``lag`` is the
    read-after-write lag in seconds that :meth:`visible` applies. ``latency`` seconds,
    ± uniform ``jitter`` (reproducible with ``seed``), pass on ``clock`` before each API
    response is written; ``rate_limit`` is a :class:`RateLimit`, ``True`` for the
    provider's documented one, or ``None``/``False`` for none.
    """

    name: ClassVar[str] = "emulator"
    # The limit the provider documents, with its source; None where it publishes none.
    documented_rate_limit: ClassVar[RateLimit | None] = None
    _routes: ClassVar[list[tuple[str, re.Pattern[str], str]]] = []

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        lag: float = 0.0,
        accept_any_key: bool = False,
        latency: float = 0.0,
        jitter: float = 0.0,
        rate_limit: RateLimit | bool | None = None,
        seed: int | None = None,
    ) -> None:
        for what, value in (("latency", latency), ("jitter", jitter)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{what} is a number of seconds, 0 or more, got {value!r}")
        self.clock: Clock = clock or SystemClock()
        self.latency = float(latency)
        self.jitter = float(jitter)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._window: _SlidingWindow | None = None
        self._counts = _Counts()
        self.accept_any_key = accept_any_key
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.lag = lag
        self.lock = threading.RLock()
        self.requests: list[EmuRequest] = []
        self.faults: list[Fault] = []
        self.pushes: list[Push] = []
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._push_session = requests.Session()
        self._push_wake = threading.Condition()
        self._push_queue: list[Push] = []
        self.set_rate_limit(rate_limit)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        routes: list[tuple[str, re.Pattern[str], str]] = []
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                spec = getattr(fn, "__emulator_route__", None)
                if spec:
                    routes = [r for r in routes if r[2] != attr]
                    routes.append((spec[0], re.compile(spec[1]), attr))
        cls._routes = routes

    # -- lifecycle ----------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; use start() or a with block")
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Emulator:
        server = _Server((self.host, self.port), _RequestHandler)
        server.emulator = self
        server.ssl_context = self.ssl_context
        self._server = server
        self._stop.clear()
        # shutdown() waits for the loop's next poll: 0.5 s by default, paid by every test's stop().
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), "serve")
        self._spawn(self._push_loop, "push")
        if not isinstance(self.clock, ManualClock):
            self._spawn(self._tick_loop, "tick")
        return self

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        t = threading.Thread(target=target, name=f"{self.name}-{what}", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        with self._push_wake:
            self._push_wake.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        self._push_session.close()

    def __enter__(self: E) -> E:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run until interrupted (for ``smsrelay emulate``)."""
        if self._server is None:
            self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- latency and rate limits ------------------------------------------------
    @property
    def rate_limit_in_force(self) -> RateLimit | None:
        """The :class:`RateLimit` this emulator enforces now, if any."""
        window = self._window
        return window.limit if window is not None else None

    def set_rate_limit(self, rate_limit: RateLimit | bool | None) -> None:
        """Enforce ``rate_limit`` from now on (``True``: the documented one; ``None``/``False``: none)."""
        if rate_limit is True:
            rate_limit = self.documented_rate_limit
        if rate_limit is not None and rate_limit is not False and not isinstance(rate_limit, RateLimit):
            raise TypeError(f"rate_limit is a RateLimit, True, False or None, got {rate_limit!r}")
        with self.lock:
            self._window = _SlidingWindow(rate_limit) if isinstance(rate_limit, RateLimit) else None

    def rate_limit_account(self, req: EmuRequest) -> str | None:
        """The account whose budget ``req`` counts against; ``None``: it does not count.

        ASSUMPTION: an emulator serves one account, whatever key a request carries;
        a provider that limits per key (SMSKit) overrides this.
        """
        return "account"

    def _over_limit(self, req: EmuRequest) -> float | None:
        """Under the lock: count ``req``, or the seconds until the provider would take it."""
        if self._window is None:
            return None
        account = self.rate_limit_account(req)
        return None if account is None else self._window.admit(account, req.received_at)

    def _control_rate_limit(self, spec: dict[str, Any]) -> None:
        """``{"documented": true}``, ``{"limit": null}``, or ``{"limit": n, "window": seconds}``."""
        if spec.get("documented"):
            self.set_rate_limit(True)
            return
        if spec.get("limit") is None:
            self.set_rate_limit(None)
            return
        like = self.rate_limit_in_force or self.documented_rate_limit
        if "window" in spec:
            window = float(spec["window"])
        elif like is not None:
            window = like.per
        else:
            raise ValueError("'window' (seconds) is needed: this provider documents no limit")
        # The 429 stays the provider's: Retry-After only where it documents one.
        hint = like.retry_after if like else False
        self.set_rate_limit(RateLimit(int(spec["limit"]), window, retry_after=hint, source="control API"))

    def _wait_latency(self) -> None:
        if not self.latency and not self.jitter:
            return
        with self._rng_lock:
            delay = self.latency + self._rng.uniform(-self.jitter, self.jitter)
        # On a ManualClock this advances time at once; on a ScaledClock it is delay / speed real seconds.
        self.clock.sleep(max(0.0, delay))

    def stats(self) -> dict[str, Any]:
        """Counters over the API requests (control calls excluded), in emulator time.

        >>> Emulator().stats()["requests"]
        0
        """
        with self.lock:
            st, limit = self._counts, self.rate_limit_in_force
            return {
                "requests": st.requests,
                "rate_limited": st.rate_limited,
                "first_request_at": st.first.isoformat() if st.first else None,
                "last_request_at": st.last.isoformat() if st.last else None,
                "rate_limit": limit.to_dict() if limit else None,
                "latency": self.latency,
                "jitter": self.jitter,
            }

    # -- dispatch -------------------------------------------------------------
    def dispatch(self, req: EmuRequest) -> EmuResponse:
        if req.path.startswith("/_emulator/"):
            return self._control(req)
        resp = self._serve(req)
        if resp.status == 429:
            with self.lock:
                self._counts.rate_limited += 1
        self._wait_latency()
        return resp

    def _serve(self, req: EmuRequest) -> EmuResponse:
        with self.lock:
            self.requests.append(req)
            st = self._counts
            st.requests += 1
            st.first = st.first or req.received_at
            st.last = req.received_at
            # The provider refuses on arrival, before the request is handled or meets a fault.
            wait = self._over_limit(req)
            hint = self._window is not None and self._window.limit.retry_after
            fault = self._take_fault(req) if wait is None else None
        if wait is not None:
            return self.rate_limited(req, {"Retry-After": str(max(1, math.ceil(wait)))} if hint else {})
        if fault is not None:
            if fault.kind == "reset_before":
                raise _Reset()
            if fault.kind == "status":
                return EmuResponse(fault.status, fault.body.encode(), dict(fault.headers))
            if fault.kind == "rate_limit":
                headers = dict(fault.headers)
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                return self.rate_limited(req, headers)
            if fault.kind == "delay":
                time.sleep(fault.seconds)
        resp = self.handle(req)
        if fault is not None:
            if fault.kind == "reset_after":
                raise _Reset()
            if fault.kind == "status_after":
                return EmuResponse(fault.status, fault.body.encode(), dict(fault.headers))
            if fault.kind == "timeout_after":
                time.sleep(fault.seconds)  # real time: the client's socket timeout is real
                raise _Reset()
        return resp

    def inject_case(self, case: FaultCase, *, method: str, path: str) -> None:
        """Set up one cell of the fault matrix on the send path ``method path``: its faults and list lag."""
        self.lag = case.lag
        for kind, options in case.faults:
            self.inject(kind, method=method, path=path, **options)

    def handle(self, req: EmuRequest) -> EmuResponse:
        for method, pattern, attr in self._routes:
            m = pattern.fullmatch(req.path)
            if m and method == req.method:
                try:
                    resp: EmuResponse = getattr(self, attr)(req, **m.groupdict())
                except Exception:  # an emulator bug must answer 500, not hang the client
                    log.exception("%s: handler %s failed", self.name, attr)
                    return json_response({"error": "emulator handler failed"}, 500)
                return resp
        if any(p.fullmatch(req.path) for _, p, _ in self._routes):
            return self.method_not_allowed(req)
        return self.not_found(req)

    # Hooks a provider emulator overrides to speak its own error shapes.
    def not_found(self, req: EmuRequest) -> EmuResponse:
        return json_response({"error": f"no route for {req.method} {req.path}"}, 404)

    def method_not_allowed(self, req: EmuRequest) -> EmuResponse:
        return json_response({"error": "method not allowed"}, 405)

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        return json_response({"error": "rate limited"}, 429, headers)

    def _take_fault(self, req: EmuRequest) -> Fault | None:
        for fault in self.faults:
            if fault.matches(req.method, req.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # -- faults, inspection ---------------------------------------------------------
    def inject(self, kind: str, **kw: Any) -> Fault:
        """Add a fault, e.g. ``emu.inject("status", status=503, path="/v2/sms")``."""
        fault = Fault(kind, **kw)
        with self.lock:
            self.faults.append(fault)
        return fault

    def received(self, method: str | None = None, path: str | None = None) -> list[EmuRequest]:
        """Recorded requests, filtered by method and a path regex."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or re.fullmatch(path, r.path))
            ]

    def state(self) -> dict[str, Any]:
        """A JSON-safe view of the emulator's state, for the control API."""
        return {}

    def reset(self) -> None:
        """Forget requests, faults, pushes, timers, stats and the rate windows (and provider state in subclasses)."""
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.pushes.clear()
            self._timers.clear()
            self._counts = _Counts()
            if self._window is not None:
                self._window = _SlidingWindow(self._window.limit)

    def _control(self, req: EmuRequest) -> EmuResponse:
        op = (req.method, req.path.removeprefix("/_emulator/").rstrip("/"))
        if op == ("GET", "requests"):
            return json_response([r.to_dict() for r in self.received()])
        if op == ("DELETE", "requests"):
            with self.lock:
                self.requests.clear()
            return json_response({"ok": True})
        if op == ("GET", "state"):
            with self.lock:
                return json_response(self.state())
        if op == ("GET", "stats"):
            return json_response(self.stats())
        if op == ("POST", "rate_limit"):
            try:
                self._control_rate_limit(req.json() if req.body else {})
            except (ValueError, TypeError, AttributeError) as exc:
                return json_response({"error": f"bad control call: {exc}"}, 400)
            limit = self.rate_limit_in_force
            return json_response({"limit": limit.requests if limit else None, "window": limit.per if limit else None})
        if op == ("GET", "timers"):
            # How many timed events are still due (benchmarks wait for none before timing).
            with self.lock:
                return json_response({"pending": len(self._timers)})
        if op == ("GET", "pushes"):
            with self.lock:
                return json_response([{**asdict(p), "body": p.body.decode("utf-8", "replace")} for p in self.pushes])
        if op == ("POST", "faults"):
            try:
                spec = req.json()
                self.inject(**spec)
            except (ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"ok": True}, 201)
        if op == ("DELETE", "faults"):
            with self.lock:
                self.faults.clear()
            return json_response({"ok": True})
        if op == ("POST", "clock/advance"):
            if not isinstance(self.clock, ManualClock):
                return json_response({"error": "the emulator's clock moves by itself (not a manual clock)"}, 409)
            seconds = float(req.json().get("seconds", 0))
            self.advance(seconds)
            return json_response({"now": self.clock.now().isoformat()})
        if op == ("POST", "reset"):
            self.reset()
            return json_response({"ok": True})
        if op in _EVENT_CALLS:
            return self._control_event(req, op)
        return json_response({"error": f"unknown control call {req.method} {req.path}"}, 404)

    # -- simulated time -----------------------------------------------------------
    def after(self, seconds: float, action: Callable[[], None]) -> None:
        """Run ``action`` once ``seconds`` of emulator time have passed."""
        with self.lock:
            heapq.heappush(self._timers, (self.clock.now() + timedelta(seconds=seconds), next(self._seq), action))

    def advance(self, seconds: float) -> None:
        """Move a manual clock forward and run whatever fell due (tests, control API)."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs the emulator to run on a ManualClock")
        clock.advance(seconds)
        self.tick()

    def tick(self) -> int:
        """Run every timer that is due; return how many ran."""
        ran = 0
        while True:
            with self.lock:
                if not self._timers or self._timers[0][0] > self.clock.now():
                    return ran
                _, _, action = heapq.heappop(self._timers)
            try:
                action()
            except Exception:
                log.exception("%s: timed action failed", self.name)
            ran += 1

    def _tick_loop(self) -> None:
        while not self._stop.wait(0.02):
            self.tick()

    def visible(self, created_at: datetime) -> bool:
        """False during the read-after-write lag after ``created_at``."""
        return self.clock.now() >= created_at + timedelta(seconds=self.lag)

    # -- pushing webhooks ---------------------------------------------------------------
    def push(
        self,
        url: str,
        *,
        method: str = "POST",
        body: bytes | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Push:
        """Queue a webhook delivery; it is retried until the receiver answers 2xx."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        push = Push(url=url, method=method.upper(), body=body or b"", headers=hdrs)
        with self.lock:
            self.pushes.append(push)
        with self._push_wake:
            self._push_queue.append(push)
            self._push_wake.notify()
        return push

    push_attempts: ClassVar[int] = 8

    def _push_loop(self) -> None:
        while not self._stop.is_set():
            with self._push_wake:
                while not self._push_queue and not self._stop.is_set():
                    self._push_wake.wait(0.5)
                if self._stop.is_set():
                    return
                push = self._push_queue.pop(0)
            self._deliver(push)

    def _deliver(self, push: Push) -> None:
        while push.attempts < self.push_attempts and not self._stop.is_set():
            push.attempts += 1
            try:
                resp = self._push_session.request(
                    push.method,
                    push.url,
                    data=push.body if push.method != "GET" else None,
                    headers=push.headers,
                    timeout=10,
                )
                push.last_status = resp.status_code
                if 200 <= resp.status_code < 300:
                    push.delivered = True
                    return
            except requests.RequestException as exc:
                log.debug("%s: push to %s failed: %s", self.name, push.url, exc)
            self._stop.wait(min(2.0, 0.05 * 2**push.attempts))

    # -- the control API every emulator shares: inject events, list messages ----------------
    # Each provider emulator overrides the hooks below in its own wire terms; a provider that
    # has no such event (ME-SMS has no inbound messages) keeps the default, which says so.
    def key_accepted(self, key: str | None, known: Collection[str]) -> bool:
        """A documented test key, or with ``accept_any_key`` any well-formed one (``--any-key``)."""
        if key in known:
            return True
        return self.accept_any_key and key is not None and _WELL_FORMED_KEY.fullmatch(key) is not None

    def control_reply(self, phone: str, text: str, to: str | None) -> dict[str, Any]:
        """An inbound SMS from ``phone``: a reply to the last message sent to it."""
        raise ControlUnsupported(f"{self.name} has no inbound messages")

    def control_link_hit(self, phone: str, url: str | None) -> dict[str, Any]:
        """A visit by ``phone`` to the tracked link in the last message sent to it."""
        raise ControlUnsupported(f"{self.name} has no link tracking")

    def control_opt_out(self, phone: str) -> dict[str, Any]:
        """``phone`` opts out, as the provider records it (usually a STOP reply)."""
        raise ControlUnsupported(f"{self.name} has no opt-outs")

    def control_messages(self) -> Iterable[dict[str, Any]]:
        """Every message sent through the API, oldest first, one per recipient:
        ``{"id", "to", "from", "body", "status"}`` with ``to`` in E.164."""
        raise ControlUnsupported(f"{self.name} cannot list its messages")

    def _control_event(self, req: EmuRequest, op: tuple[str, str]) -> EmuResponse:
        try:
            if op == ("GET", "messages"):
                limit = int(req.params.get("limit", "1000"))
                with self.lock:
                    rows = list(itertools.islice(self.control_messages(), limit))
                return json_response(rows)
            spec = req.json() if req.body else {}
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            if op[1] == "replies":
                event = self.control_reply(_phone(spec, "from"), str(spec["text"]), spec.get("to"))
            elif op[1] == "link-hits":
                event = self.control_link_hit(_phone(spec, "phone"), spec.get("url"))
            else:
                event = self.control_opt_out(_phone(spec, "phone"))
        except ControlUnsupported as exc:
            return json_response({"error": str(exc)}, 501)
        except KeyError as exc:
            return json_response({"error": f"bad control call: the field {exc.args[0]!r} is missing"}, 400)
        except LookupError as exc:  # no message was sent to that number
            return json_response({"error": f"bad control call: {exc}"}, 400)
        except (ValueError, TypeError) as exc:
            return json_response({"error": f"bad control call: {exc}"}, 400)
        return json_response(event, 201)


class ControlUnsupported(Exception):
    """The provider has no such event, so its emulator cannot inject one (HTTP 501)."""


# ``POST /_emulator/replies|link-hits|opt-outs`` and ``GET /_emulator/messages``.
_EVENT_CALLS = frozenset({("POST", "replies"), ("POST", "link-hits"), ("POST", "opt-outs"), ("GET", "messages")})
# What ``--any-key`` takes: printable ASCII, no spaces, 8 to 256 characters.
_WELL_FORMED_KEY = re.compile(r"[\x21-\x7e]{8,256}")


def _phone(spec: Mapping[str, Any], name: str) -> str:
    """A phone number field of a control call, as digits with a leading ``+``."""
    value = spec.get(name)
    if not isinstance(value, str) or not value.lstrip("+").isdigit():
        raise ValueError(f"{name!r} must be a phone number such as +61491570156")
    return "+" + value.lstrip("+")


E = TypeVar("E", bound=Emulator)
