"""The moment a request leaves: after its connection is made, as its bytes go out.

A provider counts a request against its rate limit when the request arrives. A client's
turn is taken earlier, before the request is prepared and, on a cold pool, before its
connection exists: a TCP (and TLS) handshake can put a request one or more round trips
behind its turn, and a request sent later on a warm connection then lands in the same
window of the provider. So the transport's limiter is told again when the bytes leave
(:func:`departing`), and counts the turn from then.

The hook is urllib3's connection class, installed through its pool manager's
``pool_classes_by_scheme``: the one place where a connection is known to be open and the
request line is about to be written.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool

_on_departure: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "smsrelay_on_departure", default=None
)


@contextmanager
def departing(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` when a request sent in this block leaves its connection."""
    token = _on_departure.set(callback)
    try:
        yield
    finally:
        _on_departure.reset(token)


def _depart(conn: urllib3.connection.HTTPConnection) -> None:
    callback = _on_departure.get()
    if callback is None:
        return
    if conn.sock is None:  # a new or dropped connection: the handshake comes before the request
        conn.connect()
    callback()


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        _depart(self)
        super().request(method, url, *args, **kwargs)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        _depart(self)
        super().request(method, url, *args, **kwargs)


class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class DepartureAdapter(requests.adapters.HTTPAdapter):
    """requests' ``HTTPAdapter``, whose connections report when a request leaves them."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers build their own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager
