"""One bridge: the org, the SMS client and the state file, and the cycles run on them.

>>> with Bridge(load_config("bridge.yaml")) as bridge:  # doctest: +SKIP
...     print(bridge.sync().line())
sent 12, updated 30, failed 0, skipped 1, rejected 0; Salesforce API calls 9 (...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from smsrelay import Client, Clock, ConfigError, Delivery, NotFound, Router, SmsRelayError, Unsupported
from smsrelay_salesforce.config import EXTERNAL_IDS, FIELD_TYPES, BridgeConfig
from smsrelay_salesforce.org import BudgetExceeded, Org, OrgError, soql_datetime
from smsrelay_salesforce.pull import Puller
from smsrelay_salesforce.push import DELIVERY_PICKLIST, Pusher, template_fields
from smsrelay_salesforce.state import State
from smsrelay_salesforce.summary import Summary

__all__ = ["Bridge"]

log = logging.getLogger("smsrelay.salesforce.sync")
Progress = Callable[[str, int, int], None]


class Bridge:
    """The Salesforce bridge. ``clock``, ``client`` and ``session`` are injectable for tests."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        clock: Clock | None = None,
        client: Client | None = None,
        session: requests.Session | None = None,
        bulk_poll: float = 2.0,
    ) -> None:
        self.config = config
        # With a routing config the push sends through the router, and the pull reads every
        # account's feed; ``client`` is then the first account's, for what needs just one.
        # Without an inbox the send journal is a file beside the state file: each key is claimed
        # there before its request, so the client need not ask the provider for it first. Routed,
        # every account's client claims in it, so a key is pinned to the account that sent it.
        journal = None if config.inbox else str(_journal_path(config.state_file))
        routing = config.routing if client is None else None
        self.router = Router(routing, clock=clock, journal=journal) if routing else None
        if self.router is not None:
            client = next(iter(self.router.clients.values()))
        self.client = client or Client(settings=config.sms, clock=clock, inbox=config.inbox, journal=journal)
        self.clock = clock or self.client.provider.clock
        self.org = Org(config.org, limits=config.limits, clock=self.clock, session=session, bulk_poll=bulk_poll)
        self.state = State(config.state_file)
        self._preflight_done = False

    def __repr__(self) -> str:
        if self.router is not None:
            return f"Bridge(org={self.org!r}, accounts={list(self.router.clients)!r})"
        return f"Bridge(org={self.org!r}, provider={self.client.provider.name!r})"

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.state.close()
        self.client.close()
        if self.router is not None:
            self.router.close()
        self.org.session.close()

    # -- a cycle ----------------------------------------------------------------------------
    def sync(
        self, *, dry_run: bool = False, push: bool = True, pull: bool = True, progress: Progress | None = None
    ) -> Summary:
        """One cycle: reconcile and send what is due, then write the events back.

        An API budget pause ends the cycle early and is reported in ``summary.paused``;
        whatever was claimed is still sent and written back.
        """
        before = dict(self.org.phase_calls)
        summary = Summary(dry_run=dry_run)
        self.state.lock()
        run_id = self.state.start_run("sync" + (" (dry run)" if dry_run else ""))
        try:
            pusher = (
                Pusher(
                    self.org,
                    self.client,
                    self.config,
                    self.state,
                    dry_run=dry_run,
                    progress=progress,
                    router=self.router,
                )
                if push
                else None
            )
            # The push's first reads go out with the checks: one round trip for both.
            reads = pusher.begin() if pusher is not None else []
            try:
                self.preflight()
            finally:
                wait(reads)
            if pusher is not None:
                pusher.run(summary)
                self._compact_journal()
            if pull:
                if self.router is not None:  # with an inbox, every account's events are polled into it
                    self.router.pump(limit=self.config.limits.event_page)
                for cursor, client in self.feeds():
                    Puller(
                        self.org,
                        client,
                        self.config,
                        self.state,
                        dry_run=dry_run,
                        progress=progress,
                        cursor_name=cursor,
                    ).run(summary)
        except BudgetExceeded as exc:
            summary.paused = exc.message
            log.warning("%s", exc.message)
        except SmsRelayError as exc:
            summary.errors.append(str(exc))
            raise
        finally:
            self._account(summary, before)
            self.state.finish_run(run_id, summary.to_dict())
            self.state.unlock()
        return summary

    def _compact_journal(self) -> None:
        """The journal beside the state file forgets keys accepted over 14 days ago (the inbox's
        ``dedupe_window``), as the receiver's compaction does for an inbox; keys in flight stay."""
        journal = self.client.journal if not self.config.inbox else None  # routed: the accounts share it
        if journal is not None:
            journal.inbox.compact()

    def feeds(self) -> list[tuple[str, Client]]:
        """Each event feed to read, with the name of its cursor in the state file.

        One provider: its feed under ``events``. A routing config with an inbox: the inbox,
        which holds every account's events, under ``events``. Without one: every account
        whose provider lists events, each under its own cursor ``events:<account>``.
        """
        if self.router is None or self.router.inbox is not None:
            return [("events", self.client)]
        return [(f"events:{name}", c) for name, c in self.router.clients.items() if c.capabilities.event_poll]

    def _account(self, summary: Summary, before: dict[str, int]) -> None:
        for phase, n in self.org.phase_calls.items():
            summary.add_calls(phase, n - before.get(phase, 0))
        if self.org.used is not None:
            summary.api_usage = f"{self.org.used}/{self.org.total}"

    def backfill(self, since: datetime, *, dry_run: bool = False, progress: Progress | None = None) -> Summary:
        """Ask the provider for the current delivery status of every message sent since
        ``since`` whose status is not final, and apply them under the merge rule (e.g.
        after webhooks were down)."""
        if not any(c.capabilities.status_poll for c in self.clients()):
            raise Unsupported(
                f"{self.client.provider.name} has no status lookup, so there is nothing to backfill from; "
                "its reports arrive by webhook into the inbox",
                provider=self.client.provider.name,
            )
        before = dict(self.org.phase_calls)
        summary = Summary(dry_run=dry_run)
        self.state.lock()
        run_id = self.state.start_run("backfill")
        m = self.config.mapping.message
        f = m.f
        final = ", ".join(f"'{DELIVERY_PICKLIST[s]}'" for s in DELIVERY_PICKLIST if s.final)
        soql = (
            f"SELECT Id, {f('provider_message_id')}, {f('provider')} FROM {m.object}"
            f" WHERE {f('sent_at')} >= {soql_datetime(since)}"
            f" AND {f('provider_message_id')} != null AND {f('delivery_status')} NOT IN ({final})"
        )
        puller = Puller(self.org, self.client, self.config, self.state, dry_run=dry_run, progress=progress)
        try:
            self.preflight()
            self.org.phase = "backfill"
            ids: list[tuple[str, str | None]] = []
            for row in self.org.query_iter(soql):
                ids.append((row[f("provider_message_id")], row.get(f("provider"))))
                if len(ids) >= self.config.limits.pull_window:
                    self._backfill_batch(puller, ids, summary)
                    ids = []
            if ids:
                self._backfill_batch(puller, ids, summary)
        except BudgetExceeded as exc:
            summary.paused = exc.message
        finally:
            self._account(summary, before)
            self.state.finish_run(run_id, summary.to_dict())
            self.state.unlock()
        return summary

    def _backfill_batch(self, puller: Puller, rows: list[tuple[str, str | None]], summary: Summary) -> None:
        reports: list[Delivery] = []
        if self.router is None:
            ids = [i for i, _ in rows]
            for i in range(0, len(ids), 100):
                reports.extend(self.client.status(ids[i : i + 100]).values())
        else:
            reports = self._routed_status(rows, summary)
        puller.replay(reports, summary)

    def _routed_status(self, rows: list[tuple[str, str | None]], summary: Summary) -> list[Delivery]:
        """Each message's status from the account of the provider its record names.

        Several accounts of that provider are asked in turn, for the ids the one before did
        not know; a record whose provider no account is, or has no status lookup, is reported.
        """
        assert self.router is not None
        by_provider: dict[str | None, list[str]] = {}
        for mid, provider in rows:
            by_provider.setdefault(provider, []).append(mid)
        found: dict[str, Delivery] = {}
        for provider, ids in by_provider.items():
            clients = [
                c for c in self.router.clients.values() if c.provider.name == provider and c.capabilities.status_poll
            ]
            for client in clients:
                rest = [i for i in ids if i not in found]
                for i in range(0, len(rest), 100):
                    found.update(_status(client, rest[i : i + 100], several=len(clients) > 1))
            if not clients:
                summary.errors.append(
                    f"{len(ids)} message(s) sent through {provider or 'an unnamed provider'}: no account of the "
                    "routing config can look up their status; not backfilled"
                )
        return list(found.values())

    # -- check ---------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Run every check ``check`` runs, once per bridge, before the first write.

        A mismatch between ``bridge.yaml`` and the org raises ``ConfigError`` (the CLI exits
        2) and a refused provider sign-in raises ``AuthError`` (exit 3); either way no record
        has been claimed or changed.
        """
        if self._preflight_done:
            return
        clients = self.clients()
        # The provider is asked while the org is described: one round trip for both.
        with ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="smsrelay-sf-check") as pool:
            checks = [pool.submit(client.check) for client in clients]
            problems = self.org_problems()
        if problems:
            where = self.config.source or "bridge.yaml"
            raise ConfigError(
                f"{where} does not match the org; nothing was claimed or changed:\n  - " + "\n  - ".join(problems)
            )
        for check in checks:
            check.result()
        self._preflight_done = True

    def check(self) -> list[str]:
        """Sign in, describe every mapped object, probe the send query, and list what does
        not match the mapping; then ask the SMS provider to accept the credentials.

        Returns the problems (empty when all is well); raises on a Salesforce sign-in failure.
        """
        problems = self.org_problems()
        accounts = self.router.clients.items() if self.router else [(None, self.client)]
        for name, client in accounts:
            try:
                client.check()
            except SmsRelayError as exc:
                who = f"account {name!r} ({client.provider.name})" if name else client.provider.name
                problems.append(f"sms: {who} refused the check: {exc}")
        return problems

    def clients(self) -> list[Client]:
        """The SMS client, or with a routing config each account's."""
        return list(self.router.clients.values()) if self.router else [self.client]

    def org_problems(self) -> list[str]:
        """What in the mapping, the template and ``send.where`` the org does not have."""
        problems: list[str] = []
        phase, self.org.phase = self.org.phase, "check"
        try:
            # Every describe and the probe query at once: one round trip; the probe counts
            # only when the mapping holds (it is what the describes are checked against).
            mapping = self.config.mapping
            objs = [o.object for o in mapping.objects().values()] + list(mapping.person.objects)
            refused = self.org.prefetch(objs, self._check_query)
            described = self._check_mapping(problems)
            self._check_template(described, problems)
            if not problems:
                problems += refused
        finally:
            self.org.phase = phase
        return problems

    def _check_mapping(self, problems: list[str]) -> dict[str, dict[str, Any]]:
        described: dict[str, dict[str, Any]] = {}
        for logical, omap in self.config.mapping.objects().items():
            fields = self._fields(omap.object, described, problems)
            if fields is None:
                continue
            for name, api in omap.fields.items():
                if not api:
                    continue
                where = f"mapping.{logical}.fields.{name}"
                for path in omap.fallbacks.get(name) or (api,):
                    info, why = self._resolve(omap.object, path, described, problems)
                    if info is None:
                        problems.append(f"{where}: {why}")
                        continue
                    allowed = FIELD_TYPES.get(name, set())
                    if allowed and info.get("type") not in allowed:
                        problems.append(
                            f"{where}: {omap.object}.{path} is a {info.get('type')} field; "
                            f"expected {' or '.join(sorted(allowed))}"
                        )
                    if (logical, name) in EXTERNAL_IDS and not info.get("externalId"):
                        problems.append(f"{where}: {omap.object}.{api} must be an External ID (unique) for upserts")
        person = self.config.mapping.person
        for obj in person.objects:
            fields = self._fields(obj, described, problems)
            if fields is None:
                continue
            checks = [("mobile", person.mobile, {"phone", "string"})]
            if person.opt_out:
                checks.append(("opt_out", person.opt_out, {"boolean"}))
            for key, api, types in checks:
                info = fields.get(api)
                if info is None:
                    hint = " (deploy the shipped metadata, or map opt_out: null)" if key == "opt_out" else ""
                    problems.append(f"mapping.person.{key}: {obj}.{api} does not exist{hint}")
                elif info.get("type") not in types:
                    problems.append(
                        f"mapping.person.{key}: {obj}.{api} is a {info.get('type')} field; "
                        f"expected {' or '.join(sorted(types))}"
                    )
        return described

    def _fields(
        self, obj: str, described: dict[str, dict[str, Any]], problems: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        """``obj``'s fields by API name, described once; None (and a problem) if it cannot be."""
        if obj not in described:
            try:
                described[obj] = {f["name"]: f for f in self.org.describe(obj)["fields"]}
            except BudgetExceeded:
                raise
            except OrgError as exc:
                problems.append(f"{obj}: cannot describe it ({exc}); is the metadata deployed?")
                return None
        return described[obj]

    def _resolve(
        self, obj: str, path: str, described: dict[str, dict[str, Any]], problems: list[str]
    ) -> tuple[dict[str, Any] | None, str]:
        """The describe of the field at the end of ``path`` (``Contact__r.MobilePhone``), or why not."""
        *hops, last = path.split(".")
        here = obj
        for hop in hops:
            fields = self._fields(here, described, problems) or {}
            rel = next((f for f in fields.values() if f.get("relationshipName") == hop), None)
            if rel is None or not rel.get("referenceTo"):
                return None, f"{here} has no relationship {hop} (in {path})"
            here = rel["referenceTo"][0]
        info = (self._fields(here, described, problems) or {}).get(last)
        if info is None:
            return None, f"{here}.{last} does not exist (or the user cannot see it)" + (f" (in {path})" if hops else "")
        return info, ""

    def _check_template(self, described: dict[str, dict[str, Any]], problems: list[str]) -> None:
        msg = self.config.mapping.message.object
        fields = described.get(msg, {})
        if not fields:
            return
        for path in sorted(template_fields(self.config.send.template)):
            head = path.split(".")[0]
            if "." not in path and head not in fields:
                problems.append(f"send.template: {msg}.{head} does not exist")
            elif "." in path and not any(f.get("relationshipName") == head for f in fields.values()):
                problems.append(f"send.template: {msg} has no relationship {head}")

    def _check_query(self) -> list[str]:
        # The send query itself, with LIMIT 0: Salesforce parses every field of the filter, the
        # template and the relationship paths and answers with no rows, so it costs one call.
        soql = Pusher(self.org, self.client, self.config, self.state).probe_query()
        try:
            self.org.query(soql)
        except OrgError as exc:
            if exc.status_code != 400:
                raise
            return [f"send.where / send.template: Salesforce refused the send query: {exc}"]
        return []


def _journal_path(state_file: Path) -> Path | str:
    """The send journal's SQLite file: ``bridge.db`` -> ``bridge.journal.db``."""
    if str(state_file) == ":memory:":
        return ":memory:"
    return state_file.with_name(state_file.stem + ".journal" + (state_file.suffix or ".db"))


def _status(client: Client, ids: list[str], *, several: bool) -> dict[str, Delivery]:
    """``client.status(ids)``; where several accounts share a provider, an id it does not know is skipped."""
    if not several:
        return client.status(ids)
    try:
        return client.status(ids)
    except NotFound:
        out: dict[str, Delivery] = {}
        for mid in ids:  # one unknown id must not hide the others' reports
            try:
                out.update(client.status([mid]))
            except NotFound:
                continue
        return out
