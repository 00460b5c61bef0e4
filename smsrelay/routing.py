"""Routing: one send over many provider accounts, by destination, with safe failover.

A routing file names accounts (each a full provider settings block) and ordered
routes. Each recipient takes the first route that matches it (country, number
prefix, message tag), and is sent by that route's first account that can reach it
(the cheapest first where prices are given). The next account is tried only when
the one before *definitely* refused: never after an outcome in doubt, never after
a throttle. See ``docs/routing.md``.

::

    accounts:
      th: {provider: mesms, api_key: "${MESMS_KEY}", sender: ACME, prices: {TH: 0.012}}
      au: {provider: kudosity, api: v2, api_key: "${KUDOSITY_KEY}", sender: "61481074185"}
      phone: {provider: smskit, api_key: "${SMSKIT_KEY}"}
    routes:
      - match: {country: TH}
        accounts: [th]
      - match: {country: [AU, NZ]}
        accounts: [au, phone]
      - accounts: [au, phone]        # no match: the default route

>>> router = Router.from_file("routes.yaml")  # doctest: +SKIP
>>> routed = router.send(["+66812345678", "+61491570156"], "Hi", dry_run=True)  # doctest: +SKIP
>>> [r.account for r in routed.results]  # doctest: +SKIP
['th', 'au']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers

from smsrelay.client import Client, OnDoubt, OnInvalid, _check_on_doubt, idempotency_key
from smsrelay.clock import Clock
from smsrelay.config import ProviderSettings, _expand, read_yaml, settings_from_mapping
from smsrelay.errors import (
    AmbiguousSend,
    AuthError,
    ConfigError,
    InsufficientCredit,
    InvalidRequest,
    Unsupported,
)
from smsrelay.model import Event, Message, Recipient, RecipientResult, SendResult, Status
from smsrelay.phone import normalize, region_of
from smsrelay.preflight import unreachable
from smsrelay.templates import render

if TYPE_CHECKING:
    import yaml

    from smsrelay.feed import Feed
    from smsrelay.inbox import Entry, Inbox
    from smsrelay.journal import SendJournal

__all__ = [
    "AmbiguousRoute",
    "Refusal",
    "Route",
    "RoutedEvent",
    "RoutedEventPage",
    "RoutedResult",
    "RoutedSend",
    "Router",
    "RoutingConfig",
    "is_routing_file",
    "load_routing",
    "routing_from_mapping",
]

log = logging.getLogger("smsrelay.routing")

# The name of the feed each account pumps the inbox through (pumping keeps no reader cursor).
_FEED = "router"

_ROUTE_KEYS = frozenset({"match", "accounts"})
_MATCH_KEYS = frozenset({"country", "prefix", "tag"})
_TOP_KEYS = frozenset({"accounts", "routes", "default_region", "currency", "inbox"})


@dataclass(frozen=True)
class Route:
    """One route: whom it matches (``None``: anyone) and its accounts, in order.

    >>> Route(accounts=("th",), countries=frozenset({"TH"})).matches("+66812345678", "TH", None)
    True
    """

    accounts: tuple[str, ...]
    countries: frozenset[str] | None = None
    prefixes: tuple[str, ...] | None = None
    tags: frozenset[str] | None = None
    line: int | None = None

    def matches(self, e164: str, region: str, tag: str | None) -> bool:
        if self.countries is not None and region not in self.countries:
            return False
        if self.prefixes is not None and not any(e164.startswith(p) for p in self.prefixes):
            return False
        return self.tags is None or tag in self.tags

    def describe(self, index: int) -> str:
        parts = []
        if self.countries is not None:
            parts.append("country " + "/".join(sorted(self.countries)))
        if self.prefixes is not None:
            parts.append("prefix " + "/".join(self.prefixes))
        if self.tags is not None:
            parts.append("tag " + "/".join(sorted(self.tags)))
        return f"route {index + 1} ({', '.join(parts) or 'default'})"


@dataclass(frozen=True)
class RoutingConfig:
    """Named accounts, ordered routes, and optional prices per account and country."""

    accounts: Mapping[str, ProviderSettings]
    routes: tuple[Route, ...]
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    currency: str | None = None
    default_region: str | None = None
    source: str | None = None
    # The event inbox URL; kept out of the repr, as a PostgreSQL URL may hold a password.
    inbox: str | None = field(default=None, repr=False)

    def price(self, account: str, region: str) -> float | None:
        """The price of one SMS part from ``account`` to ``region``, if the config gives it."""
        return self.prices.get(account, {}).get(region)


@dataclass(frozen=True)
class Refusal:
    """An account that definitely did not send this message, and why (safe to log)."""

    account: str
    error: str


@dataclass(frozen=True)
class RoutedResult:
    """One recipient of a routed send: the account that sent it and every refusal before.

    ``account`` gave this result: it sent the message, holds it in doubt, or refused it
    last. It is None when no route matched or no account of the route reaches the number.
    ``reason`` says why that account was chosen; ``cost`` is the estimate where prices are given.
    """

    result: RecipientResult
    account: str | None
    reason: str
    refusals: tuple[Refusal, ...] = ()
    cost: float | None = None

    @property
    def to(self) -> str:
        return self.result.to

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "to": r.to,
            "account": self.account,
            "reason": self.reason,
            "status": r.status.value,
            "message_id": r.message_id,
            "parts": r.parts,
            "error": r.error,
            "key": r.key,
            "in_doubt": r.in_doubt,
            "retry_after": r.retry_after.total_seconds() if r.retry_after is not None else None,
            "estimated_cost": self.cost,
            "refusals": [{"account": f.account, "error": f.error} for f in self.refusals],
        }


@dataclass(frozen=True)
class RoutedSend:
    """A routed send: one :class:`RoutedResult` per recipient, in the caller's order."""

    results: tuple[RoutedResult, ...]
    dry_run: bool = False
    currency: str | None = None

    @property
    def all_accepted(self) -> bool:
        return all(r.result.accepted for r in self.results)

    @property
    def in_doubt(self) -> list[RoutedResult]:
        """Results an account may or may not have accepted; settle them there, by ``key``."""
        return [r for r in self.results if r.result.in_doubt]

    @property
    def total_cost(self) -> float:
        """The estimated cost of the accepted messages that have a price (see ``unpriced``)."""
        return round(sum(r.cost for r in self.results if r.result.accepted and r.cost is not None), 6)

    @property
    def unpriced(self) -> int:
        """Accepted messages whose account gives no price for their country: not in ``total_cost``."""
        return sum(1 for r in self.results if r.result.accepted and r.cost is None)

    def as_send_result(self) -> SendResult:
        """The core's ``SendResult`` of this send (provider ``"routing"``), for code written for a ``Client``.

        >>> RoutedSend(()).as_send_result().provider
        'routing'
        """
        return SendResult("routing", None, tuple(r.result for r in self.results), dry_run=self.dry_run)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, e.g. for the CLI's ``--json``; each result names its ``account``."""
        return {
            "dry_run": self.dry_run,
            "currency": self.currency,
            "total_cost": self.total_cost,
            "unpriced": self.unpriced,
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True)
class RoutedEvent:
    """An event from one account of a routing config."""

    account: str
    event: Event


@dataclass(frozen=True)
class RoutedEventPage:
    """Events from every account, oldest first; pass ``cursors`` to the next :meth:`Router.events`."""

    events: tuple[RoutedEvent, ...]
    cursors: Mapping[str, str | None]
    more: bool = False

    def __iter__(self) -> Iterator[RoutedEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class AmbiguousRoute(AmbiguousSend):
    """A routed send with messages in doubt; ``routed`` holds every result, each naming its account."""

    def __init__(self, message: str, *, keys: list[str], routed: RoutedSend) -> None:
        self.routed = routed
        # ``result``, as on every AmbiguousSend: the whole send in the caller's order.
        super().__init__(message, keys=keys, result=routed.as_send_result())


# -- loading ---------------------------------------------------------------------
def _node_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Dotted path -> line, through mappings and lists (``routes.0.match.country``)."""
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_node_lines(value_node, key + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{prefix}{i}"
            lines[key] = item.start_mark.line + 1
            lines.update(_node_lines(item, key + "."))
    return lines


def load_routing(path: str | Path, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Read and validate a routing file; errors name the file, the line and the key.

    >>> load_routing("routes.yaml").routes[0].accounts  # doctest: +SKIP
    ('th',)
    """
    import yaml

    try:
        data, _ = read_yaml(path)  # bad YAML: ConfigError with file and line
    except ConfigError as exc:
        raise _hint_quotes(exc, path) from None
    text = Path(path).read_text(encoding="utf-8")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = _node_lines(node) if node is not None else {}
    return routing_from_mapping(data, source=str(path), lines=lines, env=env)


def _hint_quotes(exc: ConfigError, path: str | Path) -> ConfigError:
    """``{api_key: ${KEY}}`` is not YAML (a ``{`` in a flow mapping): say to quote it."""
    if exc.line is None:
        return exc
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if exc.line <= len(lines) and "{" in lines[exc.line - 1] and "${" in lines[exc.line - 1]:
        detail = exc.detail + '; a ${VAR} inside {…} must be quoted: quote it, as "${VAR}"'
        return ConfigError(detail, file=exc.file, line=exc.line)
    return exc


def is_routing_file(path: str | Path) -> bool:
    """True when the YAML file is a routing config (it has ``accounts`` and ``routes``)."""
    try:
        data, _ = read_yaml(path)
    except ConfigError as exc:
        raise _hint_quotes(exc, path) from None
    return isinstance(data, Mapping) and "accounts" in data and "routes" in data


def _strings(value: Any, where: dict[str, Any]) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int) and str(v).strip() for v in items):
        raise ConfigError("expected a name or a list of names", **where)
    return tuple(str(v).strip() for v in items)


def routing_from_mapping(
    data: Any,
    *,
    source: str | None = None,
    lines: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
) -> RoutingConfig:
    """Validate a routing config given as a dict (a parsed file, an Airflow extra).

    >>> cfg = routing_from_mapping({"accounts": {"s": {"provider": "sandbox"}}, "routes": [{"accounts": ["s"]}]})
    >>> cfg.routes[0].accounts
    ('s',)
    """
    env = os.environ if env is None else env
    lines = lines or {}

    def at(key: str) -> dict[str, Any]:
        return {"field": key, "file": source, "line": lines.get(key)}

    if not isinstance(data, Mapping):
        raise ConfigError("a routing config is a mapping with 'accounts' and 'routes'", file=source, line=1)
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"unknown key; a routing config has {', '.join(sorted(_TOP_KEYS))}", **at(str(key)))
    raw_accounts = data.get("accounts")
    if not isinstance(raw_accounts, Mapping) or not raw_accounts:
        raise ConfigError("needs at least one named account, each a provider settings block", **at("accounts"))
    region = data.get("default_region")
    accounts: dict[str, ProviderSettings] = {}
    prices: dict[str, dict[str, float]] = {}
    for name, block in raw_accounts.items():
        path = f"accounts.{name}"
        if not isinstance(block, Mapping) or "provider" not in block:
            raise ConfigError("an account is a mapping of settings with a 'provider'", **at(path))
        block = dict(block)
        raw_prices = block.pop("prices", None)
        if raw_prices is not None:
            prices[str(name)] = _prices(raw_prices, f"{path}.prices", at)
        if region and "default_region" not in block:
            block["default_region"] = region
        # The account's own lines, as the settings loader names them ("sender", "mesms.sender").
        own = {k.removeprefix(path + "."): v for k, v in lines.items() if k.startswith(path + ".")}
        try:
            accounts[str(name)] = settings_from_mapping(block, source=source, lines=own, env=env)
        except ConfigError as exc:
            # Name the key as it sits in the routing file: accounts.<name>.<field>.
            key = f"{path}.{exc.field}" if exc.field else path
            raise ConfigError(exc.detail, field=key, file=source, line=exc.line or lines.get(key)) from None
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError("needs a list of routes, each with 'accounts'", **at("routes"))
    routes = tuple(_route(i, r, accounts, at) for i, r in enumerate(raw_routes))
    inbox = data.get("inbox")
    if inbox is not None and (not isinstance(inbox, str) or not inbox.strip()):
        raise ConfigError("the inbox is a path, sqlite:///path or postgresql://… URL", **at("inbox"))
    return RoutingConfig(
        accounts=accounts,
        routes=routes,
        prices=prices,
        currency=str(data["currency"]) if data.get("currency") else None,
        default_region=str(region).upper() if region else None,
        source=source,
        inbox=_expand(inbox.strip(), env, at("inbox")) if inbox else None,
    )


def _prices(raw: Any, path: str, at: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ConfigError("prices map a country (ISO 3166, e.g. TH) to the price of one SMS part", **at(path))
    out: dict[str, float] = {}
    for country, value in raw.items():
        key = f"{path}.{country}"
        code = str(country).upper()
        if not phonenumbers.country_code_for_region(code):
            raise ConfigError(f"{country!r} is not a country code (ISO 3166, e.g. TH)", **at(key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"a price is a number of at least 0, got {value!r}", **at(key))
        out[code] = float(value)
    return out


def _route(index: int, raw: Any, accounts: Mapping[str, ProviderSettings], at: Any) -> Route:
    path = f"routes.{index}"
    if not isinstance(raw, Mapping):
        raise ConfigError("a route is a mapping with 'accounts' (and optionally 'match')", **at(path))
    for key in raw:
        if key not in _ROUTE_KEYS:
            raise ConfigError(f"unknown key; a route has {', '.join(sorted(_ROUTE_KEYS))}", **at(f"{path}.{key}"))
    if "accounts" not in raw:
        raise ConfigError("a route needs 'accounts', in the order to try them", **at(path))
    names = _strings(raw["accounts"], at(f"{path}.accounts"))
    for i, name in enumerate(names):
        if name not in accounts:
            raise ConfigError(
                f"no account named {name!r}; the accounts are {', '.join(accounts)}", **at(f"{path}.accounts.{i}")
            )
    match = raw.get("match") or {}
    if not isinstance(match, Mapping):
        raise ConfigError("match is a mapping of country, prefix and tag", **at(f"{path}.match"))
    for key in match:
        if key not in _MATCH_KEYS:
            where = at(f"{path}.match.{key}")
            raise ConfigError(f"unknown key; a match has {', '.join(sorted(_MATCH_KEYS))}", **where)
    countries = prefixes = tags = None
    if "country" in match:
        where = at(f"{path}.match.country")
        countries = frozenset(c.upper() for c in _strings(match["country"], where))
        for c in sorted(countries):
            if not phonenumbers.country_code_for_region(c):
                raise ConfigError(f"{c!r} is not a country code (ISO 3166, e.g. TH)", **where)
    if "prefix" in match:
        where = at(f"{path}.match.prefix")
        prefixes = tuple("+" + p.lstrip("+") for p in _strings(match["prefix"], where))
        if not all(p[1:].isdigit() for p in prefixes):
            raise ConfigError("a prefix is the start of an E.164 number, e.g. '+6681'", **where)
    if "tag" in match:
        tags = frozenset(_strings(match["tag"], at(f"{path}.match.tag")))
    return Route(names, countries, prefixes, tags, line=at(path)["line"])


# -- sending ---------------------------------------------------------------------
@dataclass
class _Pending:
    """One recipient on its way through its route's accounts."""

    pos: int
    to: str
    recipient: Recipient
    region: str
    candidates: list[tuple[str, str]]  # (account, why it is in this place)
    refusals: list[Refusal] = field(default_factory=list)
    key: str | None = None


def _definite_refusal(r: RecipientResult) -> bool:
    """True when the account certainly did not take the message, and another may be tried.

    Refused (4xx, credit, auth, preflight) or not written at all; never in doubt, never
    throttled (a 429 is this account's "later", not a "no"), never accepted.
    """
    if r.accepted or r.in_doubt or r.retry_after is not None:
        return False
    return r.status in (Status.REJECTED, Status.FAILED)


class Router:
    """Send through the accounts of a routing config: by destination, failover on a definite refusal.

    >>> with Router.from_file("routes.yaml") as router:  # doctest: +SKIP
    ...     routed = router.send(["+66812345678", "+61491570156"], "Hi", tag="otp")
    ...     [(r.account, r.result.status.value) for r in routed.results]
    [('th', 'queued'), ('au', 'queued')]
    """

    def __init__(
        self,
        config: RoutingConfig,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        on_doubt: OnDoubt = "raise",
        journal: str | SendJournal | bool | None = None,
        inbox: str | Inbox | None = None,
    ) -> None:
        self.config = config
        self.on_doubt = _check_on_doubt(on_doubt)
        environ = os.environ if env is None else env
        # The event inbox: given here, else the config's ``inbox``, else SMSRELAY_INBOX; opened
        # once and shared, so every account's pushed, polled and watched events meet in one log.
        spec = inbox if inbox is not None else config.inbox or environ.get("SMSRELAY_INBOX") or None
        self._own_inbox = isinstance(spec, str)
        if isinstance(spec, str):
            from smsrelay.inbox import open_inbox

            spec = open_inbox(spec, clock=clock)
        self.inbox: Inbox | None = spec
        # One client per account; they share the journal, so a key is claimed before each account sends it,
        # and the inbox, where each records the sends it watches under its own name.
        self.clients: dict[str, Client] = {
            name: Client(
                settings=s, clock=clock, env=env, on_doubt="report", journal=journal, inbox=self.inbox, account=name
            )
            for name, s in config.accounts.items()
        }
        self._feeds: dict[str, Feed] = {}

    @classmethod
    def from_file(cls, path: str | Path, *, env: Mapping[str, str] | None = None, **kw: Any) -> Router:
        """A router from a routing file (see the module docs)."""
        return cls(load_routing(path, env=env), env=env, **kw)

    def __repr__(self) -> str:
        return f"Router(accounts={list(self.clients)!r})"

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        if self._own_inbox and self.inbox is not None:
            self.inbox.close()
            self.inbox = None

    def events(self, since: Mapping[str, str | None] | None = None, *, limit: int = 500) -> RoutedEventPage:
        """One page of events from every account, each naming its account.

        ``since`` is the ``cursors`` of the page before (none: from each account's start).
        Without an inbox, each account whose provider lists events is polled, and the events
        are merged oldest first; Kaleyra, which lists none, is left out. With an inbox
        (``inbox=``, the config's ``inbox``, ``SMSRELAY_INBOX``), every account is first polled
        into it (Kaleyra: the status of its watched sends), and the page holds what the
        inbox stored after the cursors, pushed or polled, once each, in the inbox's order.

        >>> page = router.events()  # doctest: +SKIP
        >>> [(e.account, e.event.kind) for e in page]  # doctest: +SKIP
        [('th', 'delivery'), ('au', 'reply')]
        """
        if self.inbox is not None:
            return self._inbox_events(self.inbox, since or {}, limit)
        since = since or {}
        merged: list[RoutedEvent] = []
        cursors: dict[str, str | None] = dict(since)
        more = False
        for name, client in self.clients.items():
            if not client.capabilities.event_poll:
                continue
            try:
                page = client.events(since.get(name), limit=limit)
            except Unsupported:
                continue
            merged.extend(RoutedEvent(name, e) for e in page)
            cursors[name] = page.cursor
            more = more or page.more
        merged.sort(key=lambda e: e.event.occurred_at)
        return RoutedEventPage(tuple(merged), cursors, more)

    def account_for(self, event: Event | Entry) -> str | None:
        """The account an event of the inbox belongs to.

        An inbox entry names the account it came in for (the receiver's route, the account
        that polled it). An event without one (a bare event, an entry stored before entries
        named their account, or one from a route named otherwise) belongs to the only account
        of its provider; None when two accounts share that provider.

        >>> router.account_for(entry)  # doctest: +SKIP
        'nz'
        """
        from smsrelay.inbox import Entry

        if isinstance(event, Entry):
            if event.account in self.clients:
                return event.account
            event = event.event
        names = [name for name, client in self.clients.items() if client.provider.name == event.provider]
        return names[0] if len(names) == 1 else None

    def _feed(self, name: str, inbox: Inbox) -> Feed:
        """The account's feed into the inbox: it stores the account with what it polls."""
        from smsrelay.feed import Feed

        feed = self._feeds.get(name)
        if feed is None:
            provider = self.clients[name].provider
            sole = sum(c.provider.name == provider.name for c in self.clients.values()) == 1
            feed = self._feeds[name] = Feed(provider, inbox, name=_FEED, account=name, sole_account=sole)
        return feed

    def pump(self, *, limit: int = 500) -> int:
        """With an inbox, poll every account into it; return how many events were new.

        An account that lists events is polled from its own stored cursor; one that reports
        by message id only (Kaleyra) is asked the status of the sends it is watching, which
        each send records in the inbox. Each event is stored naming the account that polled
        it. Without an inbox this does nothing.

        >>> router.pump()  # doctest: +SKIP
        4
        """
        if self.inbox is None:
            return 0
        return sum(self._feed(name, self.inbox).pump(limit=limit) for name in self.clients)

    def _inbox_events(self, inbox: Inbox, since: Mapping[str, str | None], limit: int) -> RoutedEventPage:
        from smsrelay.feed import CURSOR_PREFIX, inbox_position

        self.pump(limit=limit)
        # Each account's own position: a cursor map from an older page may lag for some.
        positions = {name: inbox_position(since.get(name)) for name in self.clients}
        page = inbox.read_after(min(positions.values()), limit)
        events = []
        unknown = 0
        for entry in page.entries:
            name = self.account_for(entry)
            if name is None:
                # A route named for no account, of a provider two accounts share (or of none).
                unknown += any(c.provider.name == entry.event.provider for c in self.clients.values())
            elif entry.position > positions[name]:
                events.append(RoutedEvent(name, entry.event))
        if unknown:
            log.warning(
                "%d event(s) of the inbox name no account of this router and their provider has several: "
                "skipped; name each receiver route after its account",
                unknown,
            )
        cursors: dict[str, str | None] = {
            name: f"{CURSOR_PREFIX}{max(page.position, position)}" for name, position in positions.items()
        }
        return RoutedEventPage(tuple(events), cursors, page.more)

    def route_for(self, e164: str, tag: str | None = None) -> tuple[int, Route] | None:
        """The first route matching this (normalised) number and tag, with its index."""
        region = region_of(e164) or ""
        for i, route in enumerate(self.config.routes):
            if route.matches(e164, region, tag):
                return i, route
        return None

    def _candidates(
        self, index: int, route: Route, e164: str, region: str
    ) -> tuple[list[tuple[str, str]], list[Refusal]]:
        """The route's accounts in the order to try them, and those that cannot reach the number."""
        where = route.describe(index)
        ordered = list(route.accounts)
        priced = any(self.config.price(a, region) is not None for a in ordered)
        if priced:
            # Cheapest first; an account without a price for this country goes after the priced ones.
            ordered.sort(key=lambda a: (self.config.price(a, region) is None, self.config.price(a, region) or 0.0))
        out: list[tuple[str, str]] = []
        refused: list[Refusal] = []
        for name in ordered:
            client = self.clients[name]
            if reason := unreachable(client.capabilities, name, e164):
                refused.append(Refusal(name, reason))
                continue
            price = self.config.price(name, region)
            if not out and priced and price is not None:
                why = f"{where}: cheapest account reaching {region} ({price:g} per part)"
            elif not out and not refused:
                why = f"{where}: first account"
            else:
                why = f"{where}: next account after a refusal"
            out.append((name, why))
        return out, refused

    def send(
        self,
        to: str | Recipient | Sequence[str | Recipient],
        message: str | Message,
        *,
        sender: str | None = None,
        vars: Mapping[str, Any] | None = None,
        key: str | None = None,
        tag: str | None = None,
        dry_run: bool = False,
        on_invalid: OnInvalid = "raise",
        on_doubt: OnDoubt | None = None,
    ) -> RoutedSend:
        """Send ``message`` to each recipient through its route; results in the caller's order.

        Each account gets one ``send_many`` with its recipients, so its batching holds.
        A recipient moves to its route's next account only on a definite refusal. An
        outcome in doubt stays with the account that may have sent it: by default
        ``AmbiguousSend`` is raised (``exc.routed`` holds every result), and
        ``on_doubt="report"`` returns it. ``tag`` selects routes that match on it.

        >>> router.send("+66812345678", "Hi", dry_run=True).results[0].account  # doctest: +SKIP
        'th'
        """
        on_doubt = _check_on_doubt(on_doubt or self.on_doubt)
        if on_doubt == "resend":
            raise ConfigError(
                "on_doubt='resend' cannot be routed: a message in doubt must stay with its account",
                field="on_doubt",
            )
        msg = message if isinstance(message, Message) else Message(body=message)
        if sender or vars or key:
            msg = replace(msg, sender=sender or msg.sender, vars={**msg.vars, **(vars or {})}, ref=key or msg.ref)
        items = [to] if isinstance(to, str | Recipient) else list(to)
        final: dict[int, RoutedResult] = {}
        pending: list[_Pending] = []
        seen: set[tuple[str, str | None, str]] = set()
        for pos, item in enumerate(items):
            rcpt = item if isinstance(item, Recipient) else Recipient(str(item))
            outcome = self._start(pos, rcpt, tag)
            if isinstance(outcome, RoutedResult):
                final[pos] = outcome
                continue
            # The same message to the same number twice is a duplicate, whichever account it would take.
            ident = (outcome.to, rcpt.key, repr(sorted(rcpt.vars.items())))
            if ident in seen:
                dup = RecipientResult(outcome.to, Status.REJECTED, error="duplicate recipient")
                final[pos] = RoutedResult(dup, None, "duplicate")
                continue
            seen.add(ident)
            if msg.ref is not None or rcpt.key:
                self._pin(msg, outcome)
            pending.append(outcome)
        while pending:
            pending = self._round(msg, pending, final, dry_run=dry_run, on_invalid=on_invalid)
        routed = RoutedSend(tuple(final[i] for i in range(len(items))), dry_run=dry_run, currency=self.config.currency)
        doubt = routed.in_doubt
        if doubt and on_doubt == "raise":
            raise AmbiguousRoute(
                f"{len(doubt)} message(s) may or may not have been accepted, and were not sent through another "
                "account; settle each by its key with the account named on its result",
                keys=[r.result.key for r in doubt if r.result.key],
                routed=routed,
            )
        return routed

    def _start(self, pos: int, rcpt: Recipient, tag: str | None) -> _Pending | RoutedResult:
        try:
            e164 = normalize(rcpt.to, self.config.default_region)
        except InvalidRequest as exc:
            return RoutedResult(RecipientResult(rcpt.to, Status.REJECTED, error=exc.message), None, "invalid number")
        found = self.route_for(e164, tag)
        if found is None:
            error = "no route matches this number" + (f" with tag {tag!r}" if tag else "")
            return RoutedResult(RecipientResult(e164, Status.REJECTED, error=error), None, "no route")
        index, route = found
        region = region_of(e164) or ""
        candidates, refused = self._candidates(index, route, e164, region)
        if not candidates:
            error = "no account of its route reaches this number"
            return RoutedResult(
                RecipientResult(e164, Status.REJECTED, error=error),
                None,
                route.describe(index),
                tuple(refused),
            )
        return _Pending(pos, e164, replace(rcpt, to=e164), region, candidates, refused)

    def _pin(self, msg: Message, p: _Pending) -> None:
        """Keep a re-sent key with the account that holds it, as the send journal records it.

        A message moves on only after a definite refusal, and a refused key is released; so
        a key the journal holds (accepted, or in flight) at a later account of the route was
        taken there. Sending it from an earlier account, which may take it now, would deliver
        it twice: the message goes back to that account alone, which returns or settles it.
        """
        if len(p.candidates) < 2:
            return
        try:
            body = render(msg.body, {**msg.vars, **p.recipient.vars}, recipient=p.to)
        except InvalidRequest:
            return  # the first account refuses it, with the template error
        key = p.recipient.key or idempotency_key(str(msg.ref), p.to, body)
        for account, _ in p.candidates[1:]:
            client = self.clients[account]
            journal = client.journal
            if journal is None:
                continue
            provider = client.provider.name
            claim = journal.begin(provider, [key])
            if claim.fresh:  # not there: give the probe's claim back at once
                journal.finish(provider, [RecipientResult(p.to, Status.REJECTED, key=key)])
                continue
            p.candidates = [(account, f"pinned: the send journal holds this key at {account}")]
            p.key = key
            return

    def _round(
        self,
        msg: Message,
        pending: list[_Pending],
        final: dict[int, RoutedResult],
        *,
        dry_run: bool,
        on_invalid: OnInvalid,
    ) -> list[_Pending]:
        """One send per account, for every recipient whose next account it is; return those to try again."""
        by_account: dict[str, list[_Pending]] = {}
        for p in pending:
            by_account.setdefault(p.candidates[0][0], []).append(p)
        if on_invalid == "raise":
            # A template or length error stops the send before any account has sent anything.
            for name, group in by_account.items():
                try:
                    self.clients[name].prepare(msg, [p.recipient for p in group], on_invalid="raise")
                except ConfigError:
                    pass  # the account cannot send at all (no sender): its refusal, handled below
                except InvalidRequest as exc:
                    if exc.recipient is not None:
                        raise
                    # What the message asks and this account cannot do (track_links): its refusal.
        # The accounts send at once, each its own batch; the results are read in a fixed order.
        with ThreadPoolExecutor(max_workers=len(by_account), thread_name_prefix="smsrelay-route") as pool:
            futures = {
                name: pool.submit(
                    self._send_account,
                    name,
                    msg,
                    # A key once used stays with the message: the next account sends it under the same key.
                    [replace(p.recipient, key=p.key) if p.key else p.recipient for p in group],
                    dry_run,
                    on_invalid,
                )
                for name, group in by_account.items()
            }
        again: list[_Pending] = []
        for name, group in by_account.items():
            for p, r in zip(group, futures[name].result(), strict=True):
                p.key = p.key or r.key
                account, why = p.candidates.pop(0)
                if _definite_refusal(r) and p.candidates:
                    p.refusals.append(Refusal(account, r.error or r.status.value))
                    again.append(p)
                    continue
                price = self.config.price(account, p.region)
                cost = round(price * max(r.parts, 1), 6) if price is not None else None
                final[p.pos] = RoutedResult(r, account, why, tuple(p.refusals), cost)
        if again:
            moved: dict[tuple[str, str], int] = {}
            for p in again:
                hop = (p.refusals[-1].account, p.candidates[0][0])
                moved[hop] = moved.get(hop, 0) + 1
            for (src, dst), n in moved.items():
                log.warning("%s refused %d message(s); trying %s", src, n, dst)
        return again

    def _send_account(
        self, name: str, msg: Message, rcpts: list[Recipient], dry_run: bool, on_invalid: OnInvalid
    ) -> list[RecipientResult]:
        client = self.clients[name]
        try:
            if dry_run:
                return _dry_run(client, msg, rcpts, on_invalid)
            # The client records the sends its provider reports by id (Kaleyra, Kudosity V1) in the
            # inbox's watch list, under this account's name.
            return list(client.send_many(msg, rcpts, on_invalid=on_invalid, on_doubt="report").results)
        except (AuthError, InsufficientCredit, ConfigError, Unsupported, InvalidRequest) as exc:
            # The account refused the whole request (credentials, credit) or cannot send it at
            # all (no sender, no schedule, no link tracking): nothing was taken, so each message
            # may go elsewhere. Template and length errors were raised before any send.
            return [RecipientResult(r.to, Status.REJECTED, key=r.key, error=f"{name}: {exc}") for r in rcpts]


def _dry_run(client: Client, msg: Message, rcpts: list[Recipient], on_invalid: OnInvalid) -> list[RecipientResult]:
    """What the account would do, checked locally (render, length, preflight): no request at all."""
    if msg.send_at is not None and not client.capabilities.schedule:
        raise Unsupported(f"{client.provider.name} cannot schedule messages", provider=client.provider.name)
    ready, rejected = client.prepare(msg, rcpts, on_invalid=on_invalid)
    # The recipients are normalised already, so each outcome finds its recipient by number, in order.
    by_to: dict[str, list[RecipientResult]] = {}
    for p in ready:
        by_to.setdefault(p.to, []).append(RecipientResult(p.to, Status.QUEUED, parts=p.parts, key=p.key))
    for r in rejected:
        by_to.setdefault(r.to, []).append(r)
    return [by_to[r.to].pop(0) for r in rcpts]
