"""``bridge.yaml``: the org, the SMS provider, the field mapping, what to send and the limits.

Every key is validated before anything connects; an error names the key, the
file and the line. Secrets are never written into the file: they are
``${ENV_VAR}`` references, and a literal secret is an error.

>>> cfg = config_from_mapping({"salesforce": {"auth": "token", "instance_url": "https://acme.my.salesforce.com",
...     "access_token": "${SF_TOKEN}"}}, env={"SF_TOKEN": "00Dxx!abc"})
>>> cfg.mapping.message.object, cfg.limits.bulk_threshold
('SMS_Message__c', 2000)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smsrelay import (
    ConfigError,
    ProviderSettings,
    RoutingConfig,
    read_yaml,
    register_secret,
    routing_from_mapping,
    settings_from_mapping,
)
from smsrelay_salesforce.keys import KEYS, section_keys

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_WHERE",
    "BridgeConfig",
    "Limits",
    "Mapping_",
    "ObjectMap",
    "OrgAuth",
    "PersonMap",
    "SendRules",
    "UserDefaults",
    "config_from_mapping",
    "load_config",
]

AuthMethod = Literal["jwt", "client_credentials", "token"]
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# https://developer.salesforce.com/docs/platform/api/guide/api-eol-soap.html: SOAP login() is retired
# from API 65.0 (and disabled in new orgs), so username + password is not offered; these are the
# OAuth flows an External Client App has.
AUTH_KEYS: dict[str, tuple[str, ...]] = {
    "jwt": ("consumer_key", "username", "private_key_file"),
    "client_credentials": ("consumer_key", "consumer_secret"),
    "token": ("instance_url", "access_token"),
}
_SF_KEYS = section_keys("salesforce")
_SF_SECRETS = ("consumer_secret", "access_token")
_SMS_SECRETS = ("api_key", "api_secret", "webhook_secret")

# The default field mapping: logical name -> API name, per object. It matches the shipped
# metadata (salesforce_bridge/metadata); a test checks every field and its type.
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "message": {
        "direction": "Direction__c",
        "to": "To__c",
        "from": "From__c",
        "phone": "Phone_E164__c",
        "body": "Body__c",
        "sender": "Sender__c",
        "send_at": "Send_At__c",
        "status": "Status__c",
        "delivery_status": "Delivery_Status__c",
        "delivery_raw_status": "Delivery_Raw_Status__c",
        "delivery_updated_at": "Delivery_Updated_At__c",
        "provider": "Provider__c",
        "provider_message_id": "Provider_Message_Id__c",
        "send_key": "Send_Key__c",
        "event_id": "Event_Id__c",
        "contact": "Contact__c",
        "lead": "Lead__c",
        "related_record_id": "Related_Record_Id__c",
        "in_reply_to": "In_Reply_To__c",
        "parts": "Parts__c",
        "error_code": "Error_Code__c",
        "error_message": "Error_Message__c",
        "sent_at": "Sent_At__c",
        "delivered_at": "Delivered_At__c",
        "received_at": "Received_At__c",
        "attempts": "Attempts__c",
    },
    "link_hit": {
        "message": "Message__c",
        "event_id": "Event_Id__c",
        "url": "Url__c",
        "phone": "Phone__c",
        "hit_at": "Hit_At__c",
    },
    "consent": {
        "phone": "Phone__c",
        "opted_out": "Opted_Out__c",
        "source": "Opt_Out_Source__c",
        "opted_out_at": "Opted_Out_At__c",
        "keyword": "Keyword__c",
        "event_id": "Event_Id__c",
        "contact": "Contact__c",
        "lead": "Lead__c",
    },
}
DEFAULT_OBJECTS = {"message": "SMS_Message__c", "link_hit": "SMS_Link_Hit__c", "consent": "SMS_Consent__c"}
# Fields a mapping may leave out (set to null): the bridge then skips what needs them.
OPTIONAL_FIELDS = {
    ("message", "related_record_id"),
    ("message", "from"),
    ("message", "delivery_raw_status"),
    ("consent", "keyword"),
    ("consent", "event_id"),
    ("consent", "contact"),
    ("consent", "lead"),
    ("link_hit", "phone"),
}
# The API types each logical field accepts (REST describe types).
FIELD_TYPES: dict[str, set[str]] = {
    "direction": {"picklist", "string"},
    "to": {"phone", "string"},
    "from": {"phone", "string"},
    "phone": {"phone", "string"},
    "body": {"textarea", "string"},
    "sender": {"string", "phone", "picklist"},
    "send_at": {"datetime"},
    "status": {"picklist", "string"},
    "delivery_status": {"picklist", "string"},
    "delivery_raw_status": {"string"},
    "delivery_updated_at": {"datetime"},
    "provider": {"string", "picklist"},
    "provider_message_id": {"string"},
    "send_key": {"string"},
    "event_id": {"string"},
    "contact": {"reference"},
    "lead": {"reference"},
    "related_record_id": {"string", "reference"},
    "in_reply_to": {"reference"},
    "message": {"reference"},
    "parts": {"double", "int"},
    "attempts": {"double", "int"},
    "error_code": {"string", "picklist"},
    "error_message": {"string", "textarea"},
    "sent_at": {"datetime"},
    "delivered_at": {"datetime"},
    "received_at": {"datetime"},
    "hit_at": {"datetime"},
    "opted_out_at": {"datetime"},
    "url": {"url", "string", "textarea"},
    "opted_out": {"boolean"},
    "source": {"picklist", "string"},
    "keyword": {"string"},
}
# Fields the bridge upserts on: they must be External IDs.
EXTERNAL_IDS = {
    ("message", "provider_message_id"),
    ("message", "send_key"),
    ("message", "event_id"),
    ("link_hit", "event_id"),
    ("consent", "phone"),
}

# {now} is replaced by the run's time as a SOQL dateTime literal (UTC).
DEFAULT_WHERE = "Status__c = 'Queued' AND Direction__c = 'Outbound' AND (Send_At__c = null OR Send_At__c <= {now})"
DEFAULT_TEMPLATE = "{{ Body__c }}"


@dataclass(frozen=True, repr=False)
class OrgAuth:
    """How the bridge signs in to the org. The repr never shows a secret."""

    method: AuthMethod
    login_url: str | None = None
    consumer_key: str | None = None
    username: str | None = None
    private_key_file: str | None = None
    consumer_secret: str | None = None
    instance_url: str | None = None
    access_token: str | None = None
    api_version: str = "62.0"
    ca_bundle: str | None = None
    timeout: float = 120.0
    # The PEM itself, for callers that hold the key rather than a file (an Airflow connection).
    private_key: str | None = None

    def __repr__(self) -> str:
        return f"OrgAuth(method={self.method!r}, login_url={self.login_url!r}, instance_url={self.instance_url!r})"


@dataclass(frozen=True)
class ObjectMap:
    """One object of the mapping: its API name and logical field -> API field.

    ``fallbacks`` holds the fields a logical name reads in order, when the mapping gives a
    list (``to: [To__c, Contact__r.MobilePhone]``); ``fields`` keeps the first.
    """

    object: str
    fields: Mapping[str, str | None]
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def paths(self, logical: str) -> tuple[str, ...]:
        """The fields ``logical`` reads, first choice first.

        >>> ObjectMap("SMS_Message__c", {"to": "To__c"}, {"to": ("To__c", "Lead__r.MobilePhone")}).paths("to")
        ('To__c', 'Lead__r.MobilePhone')
        """
        return self.fallbacks.get(logical) or (self.f(logical),)

    def f(self, logical: str) -> str:
        """The API name of a mapped field; ``KeyError`` if it is mapped to null."""
        name = self.fields.get(logical)
        if not name:
            raise KeyError(f"{self.object}: the mapping leaves {logical!r} out")
        return name

    def has(self, logical: str) -> bool:
        return bool(self.fields.get(logical))


@dataclass(frozen=True)
class PersonMap:
    """The fields the bridge reads and writes on Contact and Lead, the people a message is for."""

    mobile: str = "MobilePhone"
    # ASSUMPTION: a checkbox of the shipped metadata rather than the standard consent objects
    # (ContactPointTypeConsent): those need Individual records and Data Protection settings that
    # many orgs have not enabled; docs/salesforce.md gives the reasons. null: not used.
    opt_out: str | None = "SMS_Opt_Out__c"
    objects: tuple[str, ...] = ("Contact", "Lead")


@dataclass(frozen=True)
class Mapping_:
    """The field mapping of the three objects, and of the people (Contact and Lead)."""

    message: ObjectMap
    link_hit: ObjectMap
    consent: ObjectMap
    person: PersonMap = field(default_factory=PersonMap)

    def objects(self) -> dict[str, ObjectMap]:
        return {"message": self.message, "link_hit": self.link_hit, "consent": self.consent}


@dataclass(frozen=True)
class UserDefaults:
    """A sender and default country for one Salesforce user (Kudosity's per-user settings)."""

    sender: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class SendRules:
    """What to send and how to write it."""

    where: str = DEFAULT_WHERE
    template: str = DEFAULT_TEMPLATE
    country: str | None = None
    sender: str | None = None
    user_field: str = "OwnerId"
    users: Mapping[str, UserDefaults] = field(default_factory=dict)
    track_links: bool = False
    max_per_run: int = 0  # 0: no limit


@dataclass(frozen=True)
class Limits:
    """Batch sizes and the API budget."""

    batch_size: int = 200
    bulk_threshold: int = 2000
    api_ceiling: float = 0.9
    send_chunk: int = 10000
    event_page: int = 1000
    pull_window: int = 20000
    retries: int = 4
    follow_batch: int = 200
    follow_wait: float = 1.0


@dataclass(frozen=True)
class BridgeConfig:
    """A validated ``bridge.yaml``."""

    org: OrgAuth
    sms: ProviderSettings
    mapping: Mapping_
    send: SendRules
    limits: Limits
    state_file: Path
    source: str | None = None
    inbox: str | None = None
    # ``sms:`` given as a routing config; then ``sms`` is its first account's settings.
    routing: RoutingConfig | None = None


class _Reader:
    """Walks a parsed YAML mapping, raising errors that name the key, file and line."""

    def __init__(self, source: str | None, lines: Mapping[str, int], env: Mapping[str, str]) -> None:
        self.source = source
        self.lines = lines
        self.env = env

    def error(self, key: str, message: str) -> ConfigError:
        line = self.lines.get(key)
        if line is None and "." in key:
            line = self.lines.get(key.rsplit(".", 1)[0])
        return ConfigError(message, field=key, file=self.source, line=line)

    def section(self, data: Mapping[str, Any], key: str, allowed: set[str] | None = None) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping of settings, got {type(value).__name__}")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.error(f"{key}.{k}", f"unknown key; known keys: {', '.join(sorted(allowed))}")
        return value

    def text(
        self, data: Mapping[str, Any], key: str, default: str | None = None, *, secret: bool = False
    ) -> str | None:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None or value == "":
            return default
        if isinstance(value, Mapping | list | bool):
            raise self.error(key, f"must be text, got {type(value).__name__}")
        text = str(value)
        if secret:
            m = _ENV_REF.match(text.strip())
            if not m:
                raise self.error(
                    key,
                    "secrets are not written into bridge.yaml; reference an environment variable, e.g. ${SF_SECRET}",
                )
            if m.group(1) not in self.env:
                raise self.error(key, f"refers to ${{{m.group(1)}}}, but that environment variable is not set")
            text = self.env[m.group(1)]
            register_secret(text)
            return text
        return self.expand(key, text)

    def expand(self, key: str, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in self.env:
                raise self.error(key, f"refers to ${{{m.group(1)}}}, but that environment variable is not set")
            return self.env[m.group(1)]

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, text)

    def number(self, data: Mapping[str, Any], key: str, default: float, *, lo: float, hi: float) -> float:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            return default
        if isinstance(value, bool):
            raise self.error(key, f"must be a number, got {value!r}")
        if isinstance(value, str) and value.strip().endswith("%"):
            value = value.strip()[:-1]
            try:
                number = float(value) / 100
            except ValueError:
                raise self.error(key, f"must be a number or a percentage, got {value!r}") from None
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise self.error(key, f"must be a number, got {value!r}") from None
        if not lo <= number <= hi:
            raise self.error(key, f"must be between {lo:g} and {hi:g}, got {number:g}")
        return number

    def integer(self, data: Mapping[str, Any], key: str, default: int, *, lo: int, hi: int) -> int:
        number = self.number(data, key, default, lo=lo, hi=hi)
        if number != int(number):
            raise self.error(key, f"must be a whole number, got {number:g}")
        return int(number)


def _org(r: _Reader, data: Mapping[str, Any]) -> OrgAuth:
    sf = r.section(data, "salesforce", _SF_KEYS)
    if not sf:
        raise r.error("salesforce", "is required: how to sign in to the org (auth: jwt, client_credentials or token)")
    method = r.text(sf, "salesforce.auth")
    if method in ("password", "username_password", "soap"):
        raise r.error(
            "salesforce.auth",
            "username and password sign-in is not supported: Salesforce retires SOAP login() and disables it in "
            "new orgs; use jwt or client_credentials with an External Client App",
        )
    if method not in AUTH_KEYS:
        raise r.error("salesforce.auth", f"must be one of jwt, client_credentials, token; got {method!r}")
    values: dict[str, Any] = {}
    for key in _SF_KEYS - {"auth", "timeout"}:
        values[key] = r.text(sf, f"salesforce.{key}", secret=key in _SF_SECRETS and key in sf)
    for key in AUTH_KEYS[method]:
        if not values.get(key):
            raise r.error(f"salesforce.{key}", f"auth {method} needs {key}")
    login_url = values.pop("login_url")
    domain = values.pop("domain")
    if method != "token" and not (login_url or domain):
        raise r.error(
            "salesforce.domain",
            f"auth {method} needs your My Domain (e.g. acme.my or acme--uat.sandbox.my), or login_url",
        )
    if domain and not login_url:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm:
        # an External Client App wants the My Domain login URL as the JWT audience.
        if domain in ("login", "test"):
            raise r.error("salesforce.domain", "use your My Domain (e.g. acme.my), not login or test")
        login_url = f"https://{domain}.salesforce.com"
    key_file = values.get("private_key_file")
    if method == "jwt" and key_file and not Path(key_file).is_file():
        raise r.error("salesforce.private_key_file", f"no such file: {key_file}")
    version = values.pop("api_version") or "62.0"
    if not re.fullmatch(r"\d{2}\.0", version):
        raise r.error("salesforce.api_version", f"must look like 62.0, got {version!r}")
    timeout = r.number(sf, "salesforce.timeout", 120.0, lo=1, hi=600)
    return OrgAuth(method=method, login_url=login_url, api_version=version, timeout=timeout, **values)  # type: ignore[arg-type]


def _routing(r: _Reader, data: Mapping[str, Any]) -> RoutingConfig | None:
    """``sms:`` as a routing config (accounts and routes), or None for one provider's settings."""
    sms = r.section(data, "sms")
    if not ("accounts" in sms or "routes" in sms):
        return None
    # ``sms.inbox`` is the routing config's ``inbox``: the router reads every account's events there.
    routing = dict(sms)
    lines = {k.removeprefix("sms."): v for k, v in r.lines.items() if k.startswith("sms.")}
    try:
        return routing_from_mapping(routing, source=r.source, lines=lines, env=r.env)
    except ConfigError as exc:
        if not exc.field:
            raise
        # bridge.yaml's line map stops at lists: name the line of the nearest key it has.
        key = field = f"sms.{exc.field}"
        while key not in r.lines and "." in key:
            key = key.rsplit(".", 1)[0]
        raise ConfigError(exc.detail, field=field, file=r.source, line=exc.line or r.lines.get(key)) from None


def _sms(r: _Reader, data: Mapping[str, Any]) -> ProviderSettings:
    sms = r.section(data, "sms")
    if not sms:
        return settings_from_mapping({"provider": "sandbox"}, env=r.env)
    name = str(sms.get("provider") or "sandbox").lower()
    flat: dict[str, Any] = {}
    for key, value in sms.items():
        if key == "inbox":
            continue
        if key in _SMS_SECRETS:
            flat[key] = r.text(sms, f"sms.{key}", secret=True)
        else:
            flat[key] = value
    section = sms.get(name)
    if isinstance(section, Mapping):
        for key in _SMS_SECRETS:
            if key in section:
                sub = {**section, key: r.text(section, f"sms.{name}.{key}", secret=True)}
                flat[name] = sub
                section = sub
    lines = {f"{k.removeprefix('sms.')}": v for k, v in r.lines.items() if k.startswith("sms.")}
    try:
        return settings_from_mapping(flat, name, source=r.source, lines=lines, env=r.env)
    except ConfigError as exc:
        if exc.field and not exc.field.startswith("sms."):
            raise r.error(f"sms.{exc.field}", exc.detail) from None
        raise


_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
# Logical fields the bridge only reads, so they may name a relationship path or a fallback list.
READ_PATHS = {("message", "to")}


def _mapping(r: _Reader, data: Mapping[str, Any]) -> Mapping_:
    section = r.section(data, "mapping", section_keys("mapping"))
    maps: dict[str, ObjectMap] = {}
    for logical, default_obj in DEFAULT_OBJECTS.items():
        sub = r.section(section, f"mapping.{logical}", {"object", "fields"})
        obj = r.text(sub, f"mapping.{logical}.object", default_obj) or default_obj
        fields_in = r.section(sub, f"mapping.{logical}.fields", set(DEFAULT_FIELDS[logical]))
        fields: dict[str, str | None] = dict(DEFAULT_FIELDS[logical])
        fallbacks: dict[str, tuple[str, ...]] = {}
        for k, v in fields_in.items():
            key = f"mapping.{logical}.fields.{k}"
            if v is None:
                if (logical, k) not in OPTIONAL_FIELDS:
                    raise r.error(key, "the bridge needs this field; it cannot be left out")
                fields[k] = None
                continue
            if (logical, k) in READ_PATHS:
                paths = _paths(r, key, v)
                fields[k], fallbacks[k] = paths[0], paths
                continue
            if not isinstance(v, str) or not _API_NAME.fullmatch(v):
                raise r.error(key, f"must be a field API name such as Status__c, got {v!r}")
            fields[k] = v
        maps[logical] = ObjectMap(obj, fields, fallbacks)
    return Mapping_(**maps, person=_person(r, section))


def _paths(r: _Reader, key: str, value: Any) -> tuple[str, ...]:
    """One field path or a list of them, tried in order for each record."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise r.error(key, "needs at least one field")
    for item in items:
        if not isinstance(item, str) or not _PATH.fullmatch(item):
            raise r.error(
                key, f"must be a field or a relationship path such as To__c or Contact__r.MobilePhone, got {item!r}"
            )
    if len(set(items)) != len(items):
        raise r.error(key, "names a field twice")
    return tuple(items)


def _person(r: _Reader, mapping: Mapping[str, Any]) -> PersonMap:
    sub = r.section(mapping, "mapping.person", section_keys("mapping.person"))
    mobile = r.text(sub, "mapping.person.mobile", "MobilePhone") or "MobilePhone"
    if not _API_NAME.fullmatch(mobile):
        raise r.error("mapping.person.mobile", f"must be a field API name such as MobilePhone, got {mobile!r}")
    opt_out: str | None = "SMS_Opt_Out__c"
    if "opt_out" in sub:
        opt_out = sub["opt_out"]
        if opt_out is not None and (not isinstance(opt_out, str) or not _API_NAME.fullmatch(opt_out)):
            raise r.error("mapping.person.opt_out", f"must be a checkbox field API name or null, got {opt_out!r}")
    return PersonMap(mobile=mobile, opt_out=opt_out)


def _send(r: _Reader, data: Mapping[str, Any]) -> SendRules:
    s = r.section(data, "send", section_keys("send"))
    where = r.text(s, "send.where", DEFAULT_WHERE) or DEFAULT_WHERE
    if re.search(r"\b(ORDER\s+BY|LIMIT|OFFSET)\b", where, re.IGNORECASE):
        raise r.error("send.where", "is the WHERE clause only; the bridge orders and limits the query itself")
    template = r.text(s, "send.template", DEFAULT_TEMPLATE) or DEFAULT_TEMPLATE
    from smsrelay import TemplateError, compile_template

    try:
        compile_template(template)
    except TemplateError as exc:
        raise r.error("send.template", exc.message) from None
    country = r.text(s, "send.country")
    if country and not re.fullmatch(r"[A-Za-z]{2}", country):
        raise r.error("send.country", f"must be a two-letter country code such as AU, got {country!r}")
    users: dict[str, UserDefaults] = {}
    for user_id in r.section(s, "send.users"):
        key = f"send.users.{user_id}"
        sub = r.section(r.section(s, "send.users"), key, {"sender", "country"})
        c = r.text(sub, f"{key}.country")
        if c and not re.fullmatch(r"[A-Za-z]{2}", c):
            raise r.error(f"{key}.country", f"must be a two-letter country code, got {c!r}")
        users[str(user_id)] = UserDefaults(sender=r.text(sub, f"{key}.sender"), country=c.upper() if c else None)
    track = s.get("track_links", False)
    if not isinstance(track, bool):
        raise r.error("send.track_links", f"must be true or false, got {track!r}")
    return SendRules(
        where=where,
        template=template,
        country=country.upper() if country else None,
        sender=r.text(s, "send.sender"),
        user_field=r.text(s, "send.user_field", "OwnerId") or "OwnerId",
        users=users,
        track_links=track,
        max_per_run=r.integer(s, "send.max_per_run", 0, lo=0, hi=10_000_000),
    )


def _limits(r: _Reader, data: Mapping[str, Any]) -> Limits:
    s = r.section(data, "limits", section_keys("limits"))
    return Limits(
        # Salesforce: an sObject Collections request takes at most 200 records.
        batch_size=r.integer(s, "limits.batch_size", 200, lo=1, hi=200),
        bulk_threshold=r.integer(s, "limits.bulk_threshold", 2000, lo=1, hi=150_000_000),
        api_ceiling=r.number(s, "limits.api_ceiling", 0.9, lo=0.01, hi=1.0),
        send_chunk=r.integer(s, "limits.send_chunk", 10000, lo=1, hi=100_000),
        event_page=r.integer(s, "limits.event_page", 1000, lo=1, hi=10_000),
        pull_window=r.integer(s, "limits.pull_window", 20000, lo=1, hi=1_000_000),
        retries=r.integer(s, "limits.retries", 4, lo=0, hi=20),
        # sync --follow: a batch is written when it holds this many records (one Collections
        # call each kind) or its first event has waited this many seconds.
        follow_batch=r.integer(s, "limits.follow_batch", 200, lo=1, hi=10_000),
        follow_wait=r.number(s, "limits.follow_wait", 1.0, lo=0.0, hi=3600),
    )


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    lines: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
    org: OrgAuth | None = None,
    sms: ProviderSettings | None = None,
) -> BridgeConfig:
    """Validate a parsed ``bridge.yaml``.

    ``org`` and ``sms``, when given (e.g. from Airflow connections), replace the
    ``salesforce`` and ``sms`` sections.

    >>> config_from_mapping({"salesforce": {"auth": "password"}})
    Traceback (most recent call last):
    ...
    smsrelay.errors.ConfigError: field 'salesforce.auth': username and password sign-in is not supported: ...
    """
    r = _Reader(source, lines or {}, os.environ if env is None else env)
    known = {k.path.split(".")[0] for k in KEYS}
    for key in data:
        if key not in known:
            raise r.error(str(key), f"unknown key; known keys: {', '.join(sorted(known))}")
    state = r.text(data, "state_file") or "smsrelay-salesforce.db"
    base = Path(source).parent if source else Path.cwd()
    routing = None if sms else _routing(r, data)
    if routing is not None:
        sms = next(iter(routing.accounts.values()))
    return BridgeConfig(
        org=org or _org(r, data),
        sms=sms or _sms(r, data),
        mapping=_mapping(r, data),
        send=_send(r, data),
        limits=_limits(r, data),
        state_file=(base / state) if not Path(state).is_absolute() else Path(state),
        source=source,
        inbox=r.text(r.section(data, "sms"), "sms.inbox"),
        routing=routing,
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and validate ``bridge.yaml``.

    >>> load_config("bridge.yaml").org.method  # doctest: +SKIP
    'jwt'
    """
    data, lines = read_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError("bridge.yaml must be a mapping of settings", file=str(path), line=1)
    return config_from_mapping(data, source=str(path), lines=lines, env=env)
