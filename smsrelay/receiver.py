"""The webhook receiver: an ASGI app (Starlette, served by uvicorn) that fills the inbox.

Each route belongs to one provider account, at ``/webhooks/<route>`` (anything under
it too, e.g. Kaleyra's ``/webhooks/kaleyra/dlr`` and ``/webhooks/kaleyra/mo``):

1. the body is read up to ``max_body`` bytes (413 beyond);
2. the provider adapter verifies authenticity in constant time (401), with the
   current secret and, during a rotation, the previous one;
3. the adapter parses the request into core events (400 for anything that is not a
   valid event: malformed, too deep, non-finite numbers, wrong types);
4. the events are appended to the inbox, durably and deduplicated, each naming the
   route's name as its account (a router reads each account's events by it),
5. and only then the receiver answers 200. A store failure answers 503, so the
   provider retries: nothing is acknowledged that was not stored. It is the only 5xx:
   a body no parser can read is a 400, or the provider would retry it forever.

``GET /healthz`` says the process is up; ``GET /readyz`` that the inbox answers.
Logs are one JSON object per request, with credentials in the URL redacted.

>>> app = create_app({"sandbox": provider}, open_inbox("inbox.db"))  # doctest: +SKIP
>>> serve(app, port=8080)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from smsrelay.errors import SmsRelayError, Unsupported, WebhookError
from smsrelay.inbox import Inbox
from smsrelay.model import Event
from smsrelay.providers import provider_class
from smsrelay.providers.base import Provider
from smsrelay.redaction import redact
from smsrelay.webhooks import WebhookRequest

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from smsrelay.config import ProviderSettings

__all__ = ["DEFAULT_MAX_BODY", "Route", "create_app", "route_for", "serve"]

log = logging.getLogger("smsrelay.receiver")

DEFAULT_MAX_BODY = 1024 * 1024
# Bodies up to this size are verified and parsed on the event loop (tens of µs), which
# is cheaper than a hop to a worker thread; larger ones go to a thread, so a 1 MiB
# body never stalls the other connections.
INLINE_BODY = 64 * 1024
METHODS = ["GET", "POST", "PUT"]


@dataclass(frozen=True)
class Route:
    """One provider account's webhook route.

    ``verifiers`` are adapters that differ only in their secret: the current one
    first, then the one being rotated out. ``verifiers[0]`` parses.
    """

    name: str
    verifiers: tuple[Provider, ...]

    @property
    def provider(self) -> Provider:
        return self.verifiers[0]


def route_for(settings: ProviderSettings, name: str | None = None) -> Route:
    """A route for one provider account, accepting its previous webhook secret too.

    ``webhook_secret_previous`` is the retired value of whichever secret signs the
    pushes: ``webhook_secret``, or for Kudosity V1 the ``api_secret``.

    >>> route_for(ProviderSettings("sandbox", webhook_secret="t0ken-1")).name  # doctest: +SKIP
    'sandbox'
    """
    cls = provider_class(settings.provider)
    verifiers = [cls(settings)]
    previous = settings.webhook_secret_previous
    if previous:
        verifiers.append(cls(replace(settings, webhook_secret=previous)))
        if settings.api_secret:  # pushes signed with the API secret (Kudosity V1)
            verifiers.append(cls(replace(settings, api_secret=previous)))
    return Route(name or settings.provider, tuple(verifiers))


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Gone(Exception):
    """The client disconnected before its body was read."""


@dataclass(frozen=True)
class _Endpoint:
    """An ASGI endpoint: Starlette still routes to it (404, 405), but builds no Request
    and Response around it (about 15% of the Python calls of a webhook request)."""

    app: Callable[[Scope, Receive, Send], Awaitable[None]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _accept(route: Route, request: WebhookRequest) -> list[Event]:
    """Verify and parse one request into core events, or raise ``_Refused``."""
    failure: WebhookError | None = None
    for verifier in route.verifiers:
        try:
            verifier.verify_webhook(request)
            failure = None
            break
        except WebhookError as exc:
            failure = exc
        except Exception as exc:  # a verifier that cannot read the request: malformed, not a 5xx
            failure = WebhookError(f"the request could not be verified ({type(exc).__name__})", status_code=400)
    if failure is not None:
        raise _Refused(failure.status_code or 401, failure.message)
    try:
        events = route.provider.parse_webhook(request)
    except WebhookError as exc:
        raise _Refused(exc.status_code or 400, exc.message) from None
    except Exception as exc:
        # An authentic body no parser path expected is still not an event: a 5xx would
        # have the provider retry the same poison body forever. 5xx is for the store only.
        log.warning("%s: a webhook body the parser could not read: %s", route.name, type(exc).__name__)
        raise _Refused(400, f"not a valid {route.name} event ({type(exc).__name__})") from None
    return events


def create_app(
    routes: Mapping[str, Provider | Route] | Sequence[Route],
    inbox: Inbox,
    *,
    max_body: int = DEFAULT_MAX_BODY,
) -> Starlette:
    """The receiver's ASGI app over ``routes`` (route name → adapter), storing into ``inbox``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route as StarletteRoute

    table: dict[str, Route] = {}
    items = routes.items() if isinstance(routes, Mapping) else ((r.name, r) for r in routes)
    for name, item in items:
        table[name] = item if isinstance(item, Route) else Route(name, (item,))

    async def answer(
        scope: Scope, send: Send, status: int, body: dict[str, Any], started: float, **fields: Any
    ) -> None:
        level = logging.WARNING if status >= 500 else logging.INFO
        if log.isEnabledFor(level):  # the record and its redaction cost more than the rest of a request
            log.log(level, log_line(scope, status, started, fields))
        payload = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def log_line(scope: Scope, status: int, started: float, fields: dict[str, Any]) -> str:
        client = scope.get("client")
        record = {
            "event": "webhook",
            "route": scope.get("path_params", {}).get("route"),
            "method": scope["method"],
            "path": redact(scope.get("path", "")),
            "query": redact(scope.get("query_string", b"").decode("latin-1")) or None,
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "client": client[0] if client else None,
            **fields,
        }
        return json.dumps(record, ensure_ascii=False)

    async def read_body(receive: Receive, headers: dict[str, str]) -> bytes | None:
        """The whole body, or None when it is larger than ``max_body``."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        name = scope["path_params"]["route"]
        route = table.get(name)
        if route is None:
            return await answer(scope, send, 404, {"error": f"no webhook route {name!r}"}, started)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await read_body(receive, headers)
        except _Gone:
            return await answer(scope, send, 400, {"error": "the client went away before the body was read"}, started)
        if body is None:
            return await answer(scope, send, 413, {"error": f"the body is larger than {max_body} bytes"}, started)
        try:
            query = scope.get("query_string", b"").decode("utf-8")
        except UnicodeDecodeError:
            return await answer(scope, send, 400, {"error": "the query string is not UTF-8"}, started)
        req = WebhookRequest(
            method=scope["method"], path=scope.get("path", ""), query=query, headers=headers, body=body
        )
        try:
            if len(body) <= INLINE_BODY:
                events = _accept(route, req)
            else:
                events = await run_in_threadpool(_accept, route, req)
            result = await inbox.append_async(events, account=route.name)
        except _Refused as exc:
            return await answer(scope, send, exc.status, {"error": exc.message}, started, reason=exc.message)
        except Unsupported as exc:
            return await answer(scope, send, 404, {"error": exc.message}, started)
        except SmsRelayError as exc:
            # The inbox could not store the events: the provider must retry.
            error = {"error": "the event store is unavailable"}
            return await answer(scope, send, 503, error, started, reason=exc.message)
        except Exception as exc:
            # A parser bug or a store failure: never acknowledge what was not stored.
            reason = redact(f"{type(exc).__name__}: {exc}")
            return await answer(scope, send, 503, {"error": "the event could not be stored"}, started, reason=reason)
        counts = {"accepted": result.added, "duplicates": result.duplicates}
        await answer(scope, send, 200, counts, started, events=result.added, duplicates=result.duplicates)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "routes": sorted(table)})

    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(inbox.ping)
        except Exception as exc:
            log.warning(json.dumps({"event": "not_ready", "reason": redact(f"{type(exc).__name__}: {exc}")}))
            return JSONResponse({"status": "unavailable", "inbox": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return JSONResponse({"error": detail}, status_code=status)

    app = Starlette(
        routes=[
            StarletteRoute("/healthz", healthz, methods=["GET"]),
            StarletteRoute("/readyz", readyz, methods=["GET"]),
            StarletteRoute("/webhooks/{route}", _Endpoint(webhook), methods=METHODS),
            StarletteRoute("/webhooks/{route}/{rest:path}", _Endpoint(webhook), methods=METHODS),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.inbox = inbox
    app.state.routes = table
    return app


def serve(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    forwarded_allow_ips: str | None = None,
    log_level: str = "info",
) -> None:
    """Run the app under uvicorn until interrupted.

    Uvicorn's access log stays off: it would print query strings, where URL tokens
    live. The receiver logs each request itself, redacted.

    >>> serve(create_app(routes, inbox), port=8080)  # doctest: +SKIP
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level=log_level,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_keep_alive=30,
        server_header=False,
    )
    uvicorn.Server(config).run()
