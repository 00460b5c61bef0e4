"""The org: sign-in, queries, sObject Collections and Bulk API 2.0 writes, and the API budget.

Everything the bridge says to Salesforce goes through :class:`Org`, over one
``requests`` session whose response hook counts every call and reads
``Sforce-Limit-Info``. simple-salesforce is used unmodified for queries and
REST calls; Bulk 2.0 ingest jobs are driven directly so that polling waits on
the bridge's clock.

>>> org = Org(auth, limits=Limits())  # doctest: +SKIP
>>> outcomes = org.write("update", "SMS_Message__c", [{"Id": "a00...", "Status__c": "Sent"}])  # doctest: +SKIP
>>> outcomes[0].ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import requests.adapters

from smsrelay import AuthError, Clock, SmsRelayError, SystemClock, redact, register_secret
from smsrelay_salesforce.config import Limits, OrgAuth

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

__all__ = [
    "BudgetExceeded",
    "CollectionWrite",
    "Org",
    "OrgError",
    "RecordOutcome",
    "RetryPolicy",
    "format_datetime",
    "parse_datetime",
    "soql_quote",
    "value_problem",
]

log = logging.getLogger("smsrelay.salesforce.org")
T = TypeVar("T")

# Airflow's Salesforce bulk operator retries exactly these per-record codes:
# https://github.com/apache/airflow/blob/main/providers/salesforce/src/airflow/providers/salesforce/operators/bulk.py
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
# ASSUMPTION: a SOQL query travels in the URL of a GET; Salesforce documents a 16,384-byte URI
# limit for REST, so IN lists are cut well below it (quotes and "+" grow when URL-encoded).
_MAX_IN_CHARS = 8_000
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class OrgError(SmsRelayError):
    """Salesforce refused a request; ``code`` is its errorCode (e.g. ``MALFORMED_QUERY``)."""


class BudgetExceeded(OrgError):
    """The org's API usage passed the ceiling (or Salesforce said REQUEST_LIMIT_EXCEEDED): pause."""

    def __init__(self, message: str, *, used: int | None = None, total: int | None = None) -> None:
        super().__init__(message, code="REQUEST_LIMIT_EXCEEDED")
        self.used = used
        self.total = total


@dataclass(frozen=True)
class RecordOutcome:
    """The result of one record of a Collections or Bulk write, in input order."""

    ok: bool
    id: str | None = None
    code: str | None = None
    message: str | None = None
    created: bool = False


@dataclass(frozen=True)
class CollectionWrite:
    """A Collections write checked and encoded before its calls (:meth:`Org.prepare_collection`),
    so that a thread can ready the next write while the current one is in flight."""

    op: str
    obj: str
    records: Sequence[Mapping[str, Any]]
    refused: dict[int, RecordOutcome]  # by index: values their field cannot take, never sent
    payloads: tuple[str, ...]  # one JSON body per call of ``batch_size`` records that are sent
    external_id: str | None = None


def soql_quote(value: str) -> str:
    """A SOQL string literal, quoted by simple-salesforce's ``format_soql``.

    >>> soql_quote("O'Brien")
    "'O\\\\'Brien'"
    """
    from simple_salesforce.format import format_soql

    return str(format_soql("{}", value))


@functools.lru_cache(maxsize=256)  # a write-back stamps one time on each of its records
def format_datetime(dt: datetime) -> str:
    """A Salesforce dateTime in UTC with milliseconds, as the REST and Bulk APIs take it.

    >>> format_datetime(datetime(2026, 1, 1, tzinfo=UTC))
    '2026-01-01T00:00:00.000Z'
    """
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def soql_datetime(dt: datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC).

    >>> soql_datetime(datetime(2026, 1, 1, tzinfo=UTC))
    '2026-01-01T00:00:00Z'
    """
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str | None) -> datetime | None:
    """Read a dateTime as Salesforce returns it (``...000+0000``) as aware UTC.

    >>> parse_datetime("2026-01-01T00:00:00.000+0000")
    datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?")
_NUMBER_TYPES = frozenset({"double", "int", "currency", "percent", "long"})
_TEXT_TYPES = frozenset({"string", "textarea", "phone", "email", "url", "picklist", "multipicklist", "combobox"})


def value_problem(field_type: str | None, value: Any) -> str | None:
    """Why a field of REST describe type ``field_type`` cannot take ``value``; None if it can.

    >>> value_problem("double", "abc"), value_problem("datetime", "2026-12-05"), value_problem("double", 3)
    ("'abc' is not a number", "'2026-12-05' is not a dateTime with a time (2026-12-05T10:00:00Z)", None)
    """
    if value is None or field_type is None:
        return None
    if field_type in _NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{value!r} is not a number"
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return f"{value!r} is not a number"
        return None
    if field_type == "boolean":
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    if field_type == "datetime":
        if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.fullmatch(value)):
            return None
        return f"{value!r} is not a dateTime with a time (2026-12-05T10:00:00Z)"
    if field_type == "date":
        if isinstance(value, date) or (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            return None
        return f"{value!r} is not a date (2026-12-05)"
    if field_type in ("reference", "id"):
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?", value):
            return None
        return f"{value!r} is not a record Id"
    if field_type in _TEXT_TYPES and not isinstance(value, str | int | float):
        return f"{value!r} is not text"
    return None


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    return value


def _csv_value(value: Any) -> str:
    # Bulk API 2.0: an empty cell leaves the field alone; #N/A sets it to null.
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_wire(value))


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry rule of the bridge's Salesforce calls and locked records: at most ``retries``
    more attempts, waiting 0.5 s, 1 s, 2 s ... (at most 30 s) on ``clock`` before each.

    >>> RetryPolicy(1, SystemClock()).again(2, "HTTP 503")
    False
    """

    retries: int
    clock: Clock
    base: float = 0.5
    cap: float = 30.0

    def again(self, attempt: int, why: str) -> bool:
        """After failed attempt ``attempt`` (1 for the first): wait and say True, or False when spent."""
        if attempt > self.retries:
            return False
        delay = min(self.cap, self.base * 2 ** (attempt - 1))
        log.warning("salesforce: %s; retry %d in %.1fs", why, attempt, delay)
        self.clock.sleep(delay)
        return True


class Org:
    """One connection to one org, with retries, session refresh and the API budget.

    ``calls`` counts every HTTP request to the org's APIs (sign-in excluded), so a
    run can report what it spent and the benchmarks can compare it to the floor.
    """

    def __init__(
        self,
        auth: OrgAuth,
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
        session: requests.Session | None = None,
        bulk_poll: float = 2.0,
    ) -> None:
        self.auth = auth
        self.limits = limits or Limits()
        self.clock = clock or SystemClock()
        self.bulk_poll = bulk_poll
        if session is None:
            session = requests.Session()
            adapter = _TimeoutAdapter(auth.timeout)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        if auth.ca_bundle:
            # REQUESTS_CA_BUNDLE would override verify otherwise (requests' docs, SSL Cert Verification:
            # https://requests.readthedocs.io/en/latest/user/advanced/#ssl-cert-verification).
            self.session.verify = auth.ca_bundle
            self.session.trust_env = False
        self.session.hooks["response"].append(self._on_response)
        self.retry = RetryPolicy(self.limits.retries, self.clock)
        self.calls = 0
        # Calls per phase of a run; the caller sets ``phase`` as it goes.
        self.phase = "other"
        self.phase_calls: dict[str, int] = {}
        self._here = threading.local()  # a thread's own phase (phase_here), over the shared one
        self.used: int | None = None
        self.total: int | None = None
        self._lock = threading.Lock()
        self._sf: Salesforce | None = None
        self._described: dict[str, dict[str, Any]] = {}
        self._describe_failed: dict[str, OrgError] = {}
        self._token: str | None = None
        self.instance_url: str | None = None

    def __repr__(self) -> str:
        return f"Org(auth={self.auth!r}, instance_url={self.instance_url!r})"

    # -- accounting ---------------------------------------------------------
    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/oauth2/" in response.url:
            return
        phase = getattr(self._here, "phase", None) or self.phase
        with self._lock:
            self.calls += 1
            self.phase_calls[phase] = self.phase_calls.get(phase, 0) + 1
            info = response.headers.get("Sforce-Limit-Info")
            m = _LIMIT_INFO.search(info or "")
            if m:
                self.used, self.total = int(m.group(1)), int(m.group(2))

    def phase_here(self, phase: str) -> None:
        """Count this thread's calls under ``phase``, whatever ``phase`` the others set."""
        self._here.phase = phase

    @property
    def usage(self) -> float | None:
        """The share of the daily API allocation used, from the last ``Sforce-Limit-Info``."""
        if self.used is None or not self.total:
            return None
        return self.used / self.total

    def check_budget(self) -> None:
        """Raise ``BudgetExceeded`` when usage has passed the configured ceiling."""
        usage = self.usage
        if usage is not None and usage >= self.limits.api_ceiling:
            raise BudgetExceeded(
                f"the org has used {self.used} of {self.total} API calls today "
                f"({usage:.0%}, ceiling {self.limits.api_ceiling:.0%}); pausing until usage falls",
                used=self.used,
                total=self.total,
            )

    # -- sign-in --------------------------------------------------------------
    def connect(self) -> Salesforce:
        """Sign in (or reuse the session) and return the simple-salesforce client."""
        if self._sf is None:
            self._login()
        assert self._sf is not None
        return self._sf

    def _login(self) -> None:
        from simple_salesforce.api import Salesforce

        a = self.auth
        if a.method == "token":
            token, instance = a.access_token, a.instance_url
        else:
            token, instance = self._oauth()
        assert token and instance
        register_secret(token)
        self._token = token
        self.instance_url = instance.rstrip("/")
        # Plain dicts, not simple-salesforce's default OrderedDict (its documented option): a JSON
        # answer parses ~3x faster, e.g. ~4 ms instead of ~12 ms for a 2,000-row query page.
        self._sf = Salesforce(
            instance_url=self.instance_url,
            session_id=token,
            session=self.session,
            version=a.api_version,
            object_pairs_hook=dict,
        )

    def _oauth(self) -> tuple[str, str]:
        # The bridge signs in itself rather than through simple-salesforce: its login always builds
        # https://{domain}.salesforce.com, so it cannot reach a login_url such as a local org
        # emulator or a proxy; the token endpoint and the JWT claims are the same.
        a = self.auth
        url = f"{a.login_url}/services/oauth2/token"
        headers: dict[str, str] = {}
        if a.method == "jwt":
            import jwt

            assert a.login_url and (a.private_key or a.private_key_file)
            key = a.private_key or Path(a.private_key_file or "").read_text(encoding="utf-8")
            # Wall time, not the injectable clock: Salesforce checks exp against its own real clock.
            now = int(time.time())
            # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm:
            # iss = consumer key, sub = user, aud = the (My Domain) login URL, exp within 3 minutes, RS256.
            claims = {"iss": a.consumer_key, "sub": a.username, "aud": a.login_url, "exp": now + 180}
            assertion = jwt.encode(claims, key, algorithm="RS256")
            data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        else:
            basic = base64.b64encode(f"{a.consumer_key}:{a.consumer_secret}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
            data = {"grant_type": "client_credentials"}
        try:
            r = self.session.post(url, data=data, headers=headers, timeout=a.timeout)
        except requests.RequestException as exc:
            raise AuthError(f"cannot reach the Salesforce token endpoint {url}: {redact(str(exc))}") from None
        if r.status_code != 200:
            try:
                body = r.json()
                why = f"{body.get('error')}: {body.get('error_description')}"
            except ValueError:
                why = r.text[:200]
            hint = ""
            if "not approved" in why or "app_not_found" in why:
                hint = " (pre-authorize the integration user's profile or permission set on the External Client App)"
            raise AuthError(
                f"Salesforce refused the {a.method} sign-in: {redact(why)}{hint}", status_code=r.status_code
            )
        body = r.json()
        return str(body["access_token"]), str(body["instance_url"])

    # -- the retry envelope -----------------------------------------------------------
    def call(self, fn: Callable[[Salesforce], T]) -> T:
        """Run one API call with the bridge's rules: refresh an expired session, retry
        5xx and lock errors with backoff, pause on REQUEST_LIMIT_EXCEEDED."""
        from simple_salesforce.exceptions import (
            SalesforceError,
            SalesforceExpiredSession,
            SalesforceGeneralError,
            SalesforceRefusedRequest,
        )

        attempt = 0
        refreshed = False
        while True:
            sf = self.connect()
            try:
                return fn(sf)
            except SalesforceExpiredSession:
                if self.auth.method == "token" or refreshed:
                    raise AuthError(
                        "the Salesforce session expired; with auth: token the bridge cannot renew it "
                        "(use jwt or client_credentials)"
                        if self.auth.method == "token"
                        else "Salesforce rejected a freshly issued session"
                    ) from None
                log.info("salesforce session expired; signing in again")
                refreshed = True
                self._sf = None
            except SalesforceRefusedRequest as exc:
                code = _error_code(exc.content)
                if code == "REQUEST_LIMIT_EXCEEDED":
                    raise BudgetExceeded(
                        "Salesforce says REQUEST_LIMIT_EXCEEDED: the org is out of API calls; pausing"
                    ) from None
                raise OrgError(_error_text(exc), code=code, status_code=403) from None
            except SalesforceGeneralError as exc:
                code = _error_code(exc.content)
                attempt += 1
                if (exc.status >= 500 or code in TRANSIENT_CODES) and self.retry.again(
                    attempt, f"HTTP {exc.status} {code or ''}"
                ):
                    continue
                raise OrgError(_error_text(exc), code=code, status_code=exc.status) from None
            except SalesforceError as exc:
                code = _error_code(exc.content)
                attempt += 1
                if code in TRANSIENT_CODES and self.retry.again(attempt, code or ""):
                    continue
                raise OrgError(_error_text(exc), code=code, status_code=exc.status) from None
            except requests.RequestException as exc:
                attempt += 1
                if self.retry.again(attempt, type(exc).__name__):
                    continue
                raise OrgError(f"cannot reach Salesforce: {redact(str(exc))}") from None

    # -- reads ----------------------------------------------------------------------------
    def query_iter(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every row of ``soql``, page by page (query_all_iter's loop, with a retry per page)."""
        yield from self._rows(self.call(lambda sf: sf.query(soql)))

    def query_start(self, soql: str) -> Iterator[dict[str, Any]]:
        """:meth:`query_iter`, with the first page asked for now; the later ones as the rows are read.

        >>> rows = org.query_start("SELECT Id FROM SMS_Message__c")  # doctest: +SKIP
        """
        return self._rows(self.call(lambda sf: sf.query(soql)))

    def _rows(self, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            page = self.call(functools.partial(_query_more, url=page["nextRecordsUrl"]))

    def query(self, soql: str) -> list[dict[str, Any]]:
        return list(self.query_iter(soql))

    def select_in(
        self, fields: Sequence[str], obj: str, key: str, values: Sequence[str], where: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Rows whose ``key`` is one of ``values``, in as few queries as the URL length allows.

        >>> list(org.select_in(["Id"], "SMS_Consent__c", "Phone__c", ["+61491570156"]))  # doctest: +SKIP
        [{'Id': 'a02...'}]
        """
        head = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {obj} WHERE "
        tail = f" AND ({where})" if where else ""
        chunk: list[str] = []
        size = 0
        for value in dict.fromkeys(v for v in values if v):
            quoted = soql_quote(value)
            if chunk and size + len(quoted) > _MAX_IN_CHARS:
                yield from self.query_iter(f"{head}{key} IN ({','.join(chunk)}){tail}")
                chunk, size = [], 0
            chunk.append(quoted)
            size += len(quoted) + 1
        if chunk:
            yield from self.query_iter(f"{head}{key} IN ({','.join(chunk)}){tail}")

    def rest(
        self, path: str, method: str = "GET", data: str | None = None, *, sent: Callable[[], None] | None = None
    ) -> Any:
        """One REST call (relative to ``/services/data/vXX.X/``) under :meth:`call`'s rules;
        ``sent`` is called once its body has been written, while the answer is awaited."""
        return self.call(functools.partial(_restful, path=path, method=method, data=data, sent=sent))

    def describe(self, obj: str, *, fresh: bool = False) -> dict[str, Any]:
        """The object's REST describe, fetched once per connection unless ``fresh``."""
        failed = self._describe_failed.pop(obj, None)
        if failed is not None and not fresh:
            raise failed
        if fresh or obj not in self._described:
            self._described[obj] = self.rest(f"sobjects/{obj}/describe/")
        return self._described[obj]

    def prefetch(self, objs: Iterable[str], also: Callable[[], T]) -> T:
        """Describe ``objs`` not described yet, and run ``also`` (e.g. a probe query), all at
        once: one round trip of latency instead of one each. A describe that failed is
        raised by :meth:`describe`, without a second call; ``also``'s result is returned.
        """
        self.connect()
        todo = [o for o in dict.fromkeys(objs) if o not in self._described]
        with ThreadPoolExecutor(max_workers=len(todo) + 1, thread_name_prefix="smsrelay-sf-describe") as pool:
            extra = pool.submit(also)
            described = {o: pool.submit(self.rest, f"sobjects/{o}/describe/") for o in todo}
        for obj, fut in described.items():
            try:
                self._described[obj] = fut.result()
            except OrgError as exc:
                self._describe_failed[obj] = exc
        return extra.result()

    def field_types(self, obj: str) -> dict[str, str]:
        """API name -> REST describe type of every field of ``obj`` (one describe, cached)."""
        return {f["name"]: f["type"] for f in self.describe(obj)["fields"]}

    def api_limits(self) -> dict[str, Any]:
        result: dict[str, Any] = self.rest("limits/")
        return result

    # -- writes -------------------------------------------------------------------------------
    def write(
        self,
        op: str,
        obj: str,
        records: Sequence[Mapping[str, Any]],
        *,
        external_id: str | None = None,
        bulk: bool | None = None,
        refused: Mapping[int, RecordOutcome] | None = None,
    ) -> list[RecordOutcome]:
        """``insert``, ``update`` (records carry ``Id``) or ``upsert`` (by ``external_id``).

        Uses sObject Collections (``batch_size`` per call) up to ``bulk_threshold``
        records and Bulk API 2.0 above it. Returns one outcome per record, in order;
        lock errors are retried record by record, other record errors are returned.

        Each value is checked against its field's type first: Salesforce refuses a whole
        Collections call (400 JSON_PARSER_ERROR) for one value it cannot deserialize, so a
        bad record is returned as failed here and never sent, and the rest are written.
        ``refused``: what :meth:`refusals` found in ``records``, when the caller checked them already.
        """
        if not records:
            return []
        if refused is None:
            refused = self.refusals(obj, records)
        good = [r for i, r in enumerate(records) if i not in refused]
        use_bulk = bulk if bulk is not None else len(good) > self.limits.bulk_threshold
        if not use_bulk:
            prepared = self.prepare_collection(op, obj, records, external_id=external_id, refused=refused)
            return self.write_prepared(prepared)
        return _merged(refused, self._bulk(op, obj, good, external_id) if good else [], len(records))

    def prepare_collection(
        self,
        op: str,
        obj: str,
        records: Sequence[Mapping[str, Any]],
        *,
        external_id: str | None = None,
        refused: Mapping[int, RecordOutcome] | None = None,
    ) -> CollectionWrite:
        """Check and encode a Collections write now; :meth:`write_prepared` sends it (as ``write`` with ``bulk=False``).

        >>> org.write_prepared(org.prepare_collection("update", "SMS_Message__c", updates))  # doctest: +SKIP
        [RecordOutcome(ok=True, id='a00...')]
        """
        refused = dict(refused) if refused is not None else (self.refusals(obj, records) if records else {})
        good = [r for i, r in enumerate(records) if i not in refused]
        size = self.limits.batch_size
        payloads = tuple(json.dumps(_collection_body(obj, good[i : i + size])) for i in range(0, len(good), size))
        return CollectionWrite(op, obj, records, refused, payloads, external_id)

    def write_prepared(self, w: CollectionWrite, *, sent: Callable[[], None] | None = None) -> list[RecordOutcome]:
        """Send a write :meth:`prepare_collection` readied; one outcome per record, in order.

        ``sent`` is called (at most once, in this thread) when the first call's body has been
        written, so the caller can start other work while Salesforce answers, not before the
        request is out: another thread's work then overlaps the wait instead of the sending.
        """
        good = [r for i, r in enumerate(w.records) if i not in w.refused]
        size = self.limits.batch_size
        written: list[RecordOutcome] = []
        once = _once(sent) if sent is not None else None
        for k, payload in enumerate(w.payloads):
            chunk = good[k * size : (k + 1) * size]
            written.extend(self._collection(w.op, w.obj, chunk, w.external_id, payload, sent=once if k == 0 else None))
        return _merged(w.refused, written, len(w.records))

    def refusals(self, obj: str, records: Sequence[Mapping[str, Any]]) -> dict[int, RecordOutcome]:
        """Index -> a failed outcome, for each record with a value its field's type cannot take
        (what :meth:`write` refuses to send).

        >>> org.refusals("SMS_Message__c", [{"Id": "a00...", "Parts__c": "two"}])  # doctest: +SKIP
        {0: RecordOutcome(ok=False, id='a00...', code='INVALID_TYPE_ON_FIELD_IN_RECORD', ...)}
        """
        types = self.field_types(obj)
        refused: dict[int, RecordOutcome] = {}
        for i, rec in enumerate(records):
            for name, value in rec.items():
                if value is None:
                    continue  # null fits every type
                why = value_problem(types.get(name), value)
                if why:
                    rid = rec.get("Id")
                    msg = f"{obj}.{name}: {why}; not sent, so the rest of the batch is written"
                    refused[i] = RecordOutcome(False, str(rid) if rid else None, "INVALID_TYPE_ON_FIELD_IN_RECORD", msg)
                    break
        return refused

    def _collection(
        self,
        op: str,
        obj: str,
        chunk: Sequence[Mapping[str, Any]],
        external_id: str | None,
        payload: str | None = None,  # the whole chunk's body, encoded already
        sent: Callable[[], None] | None = None,  # called once the first attempt's body is written
    ) -> list[RecordOutcome]:
        results: list[RecordOutcome | None] = [None] * len(chunk)
        todo = list(range(len(chunk)))
        attempt = 0
        while todo:
            if payload is None:
                payload = json.dumps(_collection_body(obj, [chunk[i] for i in todo]))
            if op == "insert":
                method, path = "POST", "composite/sobjects"
            elif op == "update":
                method, path = "PATCH", "composite/sobjects"
            elif op == "upsert":
                assert external_id
                method, path = "PATCH", f"composite/sobjects/{obj}/{external_id}"
            else:
                raise ValueError(f"unknown write {op!r}")
            answer, payload = self.rest(path, method, payload, sent=sent), None
            if not isinstance(answer, list) or len(answer) != len(todo):
                raise OrgError(f"Salesforce answered a Collections {op} of {len(todo)} records with {answer!r:.200}")
            retry: list[int] = []
            for i, item in zip(todo, answer, strict=True):
                if item.get("success"):
                    results[i] = RecordOutcome(True, item.get("id"), created=bool(item.get("created")))
                    continue
                errors = item.get("errors") or [{}]
                code = errors[0].get("statusCode")
                results[i] = RecordOutcome(False, item.get("id"), code, redact(str(errors[0].get("message"))))
                if code in TRANSIENT_CODES:
                    retry.append(i)
            attempt += 1
            # Locked records go again, alone, under the same policy as a call; the rest keep their outcome.
            todo = retry if retry and self.retry.again(attempt, f"{len(retry)} record(s) locked") else []
        return [r for r in results if r is not None]

    # -- Bulk API 2.0 -------------------------------------------------------------------------
    def _bulk(
        self, op: str, obj: str, records: Sequence[Mapping[str, Any]], external_id: str | None
    ) -> list[RecordOutcome]:
        key = external_id or "Id"
        job: dict[str, Any] = {"object": obj, "operation": op, "contentType": "CSV", "lineEnding": "LF"}
        if op == "upsert":
            job["externalIdFieldName"] = key
        # The job is opened while its CSV is written: the file's writing costs no round trip. Each
        # record's outcome should it be written is built while the job is uploaded and processed.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smsrelay-sf-bulk")
        try:
            opened = pool.submit(self.rest, "jobs/ingest/", "POST", json.dumps(job))
            data = _csv_file(records)
            info = opened.result()
            written = pool.submit(lambda: [RecordOutcome(True, str(r["Id"]) if r.get("Id") else None) for r in records])
        finally:
            pool.shutdown(wait=False)
        job_id = info["id"]
        self.call(
            lambda sf: sf._call_salesforce(
                "PUT", f"{sf.base_url}jobs/ingest/{job_id}/batches", data=data, headers={"Content-Type": "text/csv"}
            )
        )
        close = json.dumps({"state": "UploadComplete"})
        self.rest(f"jobs/ingest/{job_id}/", "PATCH", close)
        deadline = time.monotonic() + 3600
        state = ""
        polls = 0
        while True:
            status = self.rest(f"jobs/ingest/{job_id}/")
            state = status.get("state", "")
            if state in ("JobComplete", "Failed", "Aborted"):
                break
            if time.monotonic() > deadline:
                raise OrgError(f"Bulk API 2.0 job {job_id} did not finish within an hour (state {state})")
            polls += 1
            # Exponential, so a slow job costs a few calls more, not one per interval.
            self.clock.sleep(min(self.bulk_poll * 2 ** (polls - 1), 30.0))
        if state != "JobComplete":
            raise OrgError(f"Bulk API 2.0 job {job_id} ended {state}: {status.get('errorMessage')}")
        failed = self.call(
            lambda sf: sf._call_salesforce("GET", f"{sf.base_url}jobs/ingest/{job_id}/failedResults/")
        ).text
        errors: dict[str, tuple[str, str]] = {}
        for row in csv.DictReader(io.StringIO(failed)):
            text = row.get("sf__Error") or ""
            code, _, msg = text.partition(":")
            errors[row.get(key) or row.get("sf__Id") or ""] = (code.strip(), msg.strip())
        if not errors:
            return written.result()
        out: list[RecordOutcome] = []
        lock_retry: list[Mapping[str, Any]] = []
        for rec in records:
            err = errors.get(str(rec.get(key)))
            if err is None:
                out.append(RecordOutcome(True, str(rec.get("Id")) if rec.get("Id") else None))
            elif err[0] in TRANSIENT_CODES:
                lock_retry.append(rec)
                out.append(RecordOutcome(False, None, err[0], err[1]))
            else:
                out.append(RecordOutcome(False, None, err[0], redact(err[1])))
        if lock_retry:
            # Locked rows go again through Collections, record by record.
            again = iter(self.write(op, obj, lock_retry, external_id=external_id, bulk=False))
            out = [next(again) if (not o.ok and o.code in TRANSIENT_CODES) else o for o in out]
        return out


def _merged(refused: Mapping[int, RecordOutcome], written: Sequence[RecordOutcome], n: int) -> list[RecordOutcome]:
    """``n`` outcomes in the records' order: the refused ones by index, the written ones in turn."""
    rest = iter(written)
    return [refused[i] if i in refused else next(rest) for i in range(n)]


def _collection_body(obj: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An sObject Collections request body: each record with its type, values as JSON takes them."""
    return {
        "allOrNone": False,
        "records": [{"attributes": {"type": obj}, **{k: _wire(v) for k, v in rec.items()}} for rec in records],
    }


def _csv_file(records: Sequence[Mapping[str, Any]]) -> bytes:
    """The records as one Bulk API 2.0 CSV upload: a column per field any record names."""
    columns: dict[str, None] = {}
    for rec in records:
        columns.update(dict.fromkeys(rec))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for rec in records:
        writer.writerow([_csv_value(rec[c]) if c in rec else "" for c in columns])
    return buf.getvalue().encode()


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    """A default timeout: simple-salesforce sets none, and a hung connection must not hang a sync."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def _restful(sf: Salesforce, *, path: str, method: str, data: str | None, sent: Callable[[], None] | None) -> Any:
    body = _OnWire(data.encode(), sent) if data is not None and sent is not None else data
    return sf.restful(path, method=method, data=body)


class _OnWire(io.BytesIO):
    """A request body that calls ``sent`` when it has been read to its end: urllib3 reads a
    file-like body block by block as it writes it, and once more to find it ended."""

    def __init__(self, data: bytes, sent: Callable[[], None]) -> None:
        super().__init__(data)
        self._sent: Callable[[], None] | None = sent

    def read(self, size: int | None = -1, /) -> bytes:
        block = super().read(size)
        if not block and self._sent is not None:
            sent, self._sent = self._sent, None
            sent()
        return block


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn``, run by the first call only (a retried request writes its body again)."""
    left = [fn]

    def run() -> None:
        if left:
            left.pop()()

    return run


def _query_more(sf: Salesforce, *, url: str) -> Any:
    return sf.query_more(url, identifier_is_url=True)


def _error_code(content: Any) -> str | None:
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        code = content[0].get("errorCode")
        return str(code) if code else None
    if isinstance(content, Mapping):
        code = content.get("errorCode")
        return str(code) if code else None
    return None


def _error_text(exc: Any) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        text = f"{content[0].get('errorCode')}: {content[0].get('message')}"
    else:
        text = str(content)[:300]
    return redact(f"Salesforce {exc.resource_name or ''} failed: {text}".replace("  ", " "))
