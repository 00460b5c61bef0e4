"""Provider settings from keyword arguments, environment variables or a YAML file.

Every value is validated before anything is sent; an error names the field, the
file and, for YAML, the line. A YAML value may reference the environment as
``${NAME}``, so secrets need not be written into files.

Environment variables: ``SMSRELAY_PROVIDER``, ``SMSRELAY_DEFAULT_REGION``,
``SMSRELAY_RECONCILE_WINDOW``, ``SMSRELAY_ON_DOUBT``, ``SMSRELAY_RATE_LIMIT_STORE``, and per provider
``SMSRELAY_<PROVIDER>_<FIELD>`` (e.g. ``SMSRELAY_KUDOSITY_API_KEY``), which wins.

A YAML file::

    provider: kudosity
    default_region: AU
    kudosity:
      api: v1
      api_key: ${KUDOSITY_KEY}
      api_secret: ${KUDOSITY_SECRET}
      sender: Acme
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smsrelay.errors import ConfigError
from smsrelay.redaction import redact, register_secret
from smsrelay.shared_limit import register_dsn

if TYPE_CHECKING:
    import yaml

__all__ = [
    "SECRET_FIELDS",
    "ProviderSettings",
    "known_settings",
    "load_settings",
    "missing_credentials",
    "provider_names",
    "settings_from_env",
    "settings_from_file",
    "settings_from_mapping",
]

# The settings whose values are secrets: registered for redaction, hidden from reprs, and
# masked by integrations that log (the Airflow hook).
SECRET_FIELDS = ("api_key", "api_secret", "webhook_secret", "webhook_secret_previous")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, repr=False)
class ProviderSettings:
    """Everything needed to talk to one provider account.

    ``options`` holds the provider's own settings (e.g. Kudosity ``api``,
    Kaleyra ``sid``). The repr never shows a secret.

    >>> ProviderSettings("kudosity", api_key="k-123456")
    ProviderSettings(provider='kudosity', api_key='***')
    """

    provider: str
    api_key: str | None = None
    api_secret: str | None = None
    webhook_secret: str | None = None
    # The secret being rotated out: the receiver accepts both until it is removed.
    webhook_secret_previous: str | None = None
    base_url: str | None = None
    sender: str | None = None
    default_region: str | None = None
    rate_limit: float | None = None
    timeout: float = 30.0
    retries: int = 5
    concurrency: int | None = None
    # How long (seconds) a send that ended without an answer is looked up before it is in
    # doubt, and what then; None leaves the client's default (60 s, "raise").
    reconcile_window: float | None = None
    on_doubt: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    # A PostgreSQL URL: the account's rate limit is shared by every process using it (shared_limit.py).
    rate_limit_store: str | None = None

    def __post_init__(self) -> None:
        for name in SECRET_FIELDS:
            register_secret(getattr(self, name))
        register_dsn(self.rate_limit_store)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, {}, f.default) and f.name != "provider":
                continue
            if f.name in SECRET_FIELDS:
                value = "***"
            elif f.name == "rate_limit_store":
                value = redact(value)
            shown.append(f"{f.name}={value!r}")
        return f"ProviderSettings({', '.join(shown)})"

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


_COMMON: dict[str, type] = {
    "api_key": str,
    "api_secret": str,
    "webhook_secret": str,
    "webhook_secret_previous": str,
    "base_url": str,
    "sender": str,
    "default_region": str,
    "rate_limit": float,
    "timeout": float,
    "retries": int,
    "concurrency": int,
    "reconcile_window": float,
    "on_doubt": str,
    "rate_limit_store": str,
}
# The same choices as the client's OnDoubt (client imports this module, not the reverse).
ON_DOUBT_CHOICES = ("raise", "report", "resend")
# Settings one variable sets for whichever provider is chosen; SMSRELAY_<PROVIDER>_<FIELD> still wins.
_GLOBAL_ENV = {
    "default_region": "SMSRELAY_DEFAULT_REGION",
    "reconcile_window": "SMSRELAY_RECONCILE_WINDOW",
    "on_doubt": "SMSRELAY_ON_DOUBT",
    "rate_limit_store": "SMSRELAY_RATE_LIMIT_STORE",
}


def _coerce(value: Any, kind: type, where: dict[str, Any]) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"expected true or false, got {value!r}", **where)
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"expected a number, got {value!r}", **where)
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"expected a number, got {value!r}", **where) from None
        if number < 0:
            raise ConfigError(f"must not be negative, got {value!r}", **where)
        return number
    if kind is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"expected text, got a {type(value).__name__}", **where)
        text = str(value)
        if _CONTROL.search(text):
            # Keys and senders travel in HTTP headers and form fields, where a line break
            # is refused (or worse, splits the request); often a secret file's trailing newline.
            raise ConfigError(
                "contains a line break or another control character; a secret copied with its "
                "trailing newline? Remove it and try again",
                **where,
            )
        return text
    return value


def _expand(value: Any, env: Mapping[str, str], where: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ConfigError(f"refers to ${{{name}}}, but that environment variable is not set", **where)
        return env[name]

    return _ENV_REF.sub(sub, value)


def provider_names() -> tuple[str, ...]:
    """Every provider name a setting's ``provider`` accepts.

    >>> "kudosity" in provider_names()
    True
    """
    from smsrelay.providers import PROVIDERS

    return tuple(PROVIDERS)


def known_settings(provider: str) -> frozenset[str]:
    """The settings ``provider`` accepts: the common ones and its own options.

    Raises :class:`ConfigError` (``field='provider'``) for an unknown provider.

    >>> "sid" in known_settings("kaleyra"), "sid" in known_settings("sandbox")
    (True, False)
    """
    from smsrelay.providers import provider_class

    return frozenset(_COMMON) | frozenset(provider_class(provider).options)


def missing_credentials(provider: str, data: Mapping[str, Any]) -> list[str]:
    """The settings ``provider`` requires that ``data`` leaves unset or empty, in its order.

    Each integration words the error in its own terms (an input, a connection field);
    the rule of what is required lives here, once.

    >>> missing_credentials("kaleyra", {"api_key": "k"})
    ['sid']
    """
    from smsrelay.providers import provider_class

    return [req for req in provider_class(provider).required if data.get(req) in (None, "")]


def settings_from_mapping(
    data: Mapping[str, Any],
    provider: str | None = None,
    *,
    source: str | None = None,
    lines: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
) -> ProviderSettings:
    """Validate settings given as a dict (keyword arguments, a parsed file).

    The provider's own fields may sit at the top level or in a section named after it.

    >>> settings_from_mapping({"provider": "sandbox"}).provider
    'sandbox'
    """
    from smsrelay.providers import provider_class

    env = os.environ if env is None else env
    lines = lines or {}
    name = (provider or data.get("provider") or "sandbox").lower()
    where_p: dict[str, Any] = {"field": "provider", "file": source, "line": lines.get("provider")}
    try:
        cls = provider_class(name)
    except ConfigError as exc:
        raise ConfigError(exc.detail, **where_p) from None
    merged: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        if key == name and isinstance(value, Mapping):
            continue
        merged[key] = (value, key)
    section = data.get(name)
    if isinstance(section, Mapping):
        for key, value in section.items():
            merged[key] = (value, f"{name}.{key}")
    known = dict(_COMMON) | dict(cls.options)
    common: dict[str, Any] = {}
    options: dict[str, Any] = {}
    from smsrelay.providers import PROVIDERS

    for key, (value, path) in merged.items():
        where: dict[str, Any] = {"field": path, "file": source, "line": lines.get(path)}
        if key == "provider" or (key in PROVIDERS and key != name):
            continue
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"unknown setting for {name}; known settings: {hint}", **where)
        value = _coerce(_expand(value, env, where), known[key], where)
        if key in ("api_key", "api_secret") and isinstance(value, str) and not value.isascii():
            # Keys travel in HTTP headers, which are Latin-1 at most; a docs placeholder (…) left in?
            raise ConfigError("must be plain ASCII, as every provider's keys are; a placeholder left in?", **where)
        if key == "rate_limit_store" and not str(value).startswith(("postgresql://", "postgres://")):
            # The value is not echoed: it may hold a password.
            raise ConfigError("must be a PostgreSQL URL, e.g. postgresql://user@host/dbname", **where)
        if key == "on_doubt" and value not in ON_DOUBT_CHOICES:
            raise ConfigError(f"must be one of {', '.join(ON_DOUBT_CHOICES)}, got {value!r}", **where)
        if key in _COMMON:
            common[key] = value
        else:
            options[key] = value
    missing = missing_credentials(name, {**options, **common})
    if missing:
        req = missing[0]
        env_name = f"SMSRELAY_{name.upper()}_{req.upper()}"
        raise ConfigError(
            f"{name} needs {req}; set it in the config or as {env_name}",
            field=f"{name}.{req}" if source else req,
            file=source,
        )
    if common.get("default_region"):
        common["default_region"] = str(common["default_region"]).upper()
    return ProviderSettings(provider=name, options=options, source=source, **common)


def settings_from_env(env: Mapping[str, str] | None = None, provider: str | None = None) -> ProviderSettings:
    """Read ``SMSRELAY_*`` variables.

    >>> settings_from_env({"SMSRELAY_PROVIDER": "sandbox"}).provider
    'sandbox'
    """
    from smsrelay.providers import provider_class

    env = os.environ if env is None else env
    name = (provider or env.get("SMSRELAY_PROVIDER") or "sandbox").lower()
    cls = provider_class(name)
    data: dict[str, Any] = {"provider": name}
    # Which variable set each setting, so that an error names the one the user wrote.
    var_of: dict[str, str] = {}
    for opt, var in _GLOBAL_ENV.items():
        if env.get(var):
            data[opt], var_of[opt] = env[var], var
    prefix = f"SMSRELAY_{name.upper()}_"
    known = set(_COMMON) | set(cls.options)
    for key, value in env.items():
        if key.startswith(prefix):
            opt = key[len(prefix) :].lower()
            if opt in known:
                data[opt], var_of[opt] = value, key
    try:
        return settings_from_mapping(data, name, source="environment", env=env)
    except ConfigError as exc:
        if exc.field not in var_of:
            raise
        var = var_of[exc.field]
        raise ConfigError(exc.detail, field=var, file="environment", provider=exc.provider) from None


def _line_map(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_line_map(value_node, key + "."))
    return lines


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file; return the data and a map of dotted key -> line number.

    Bad YAML raises ``ConfigError`` with the file and line of the problem.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sms.yml"
    >>> _ = path.write_text("provider: sandbox\\nsandbox:\\n  sender: Acme\\n")
    >>> read_yaml(path)
    ({'provider': 'sandbox', 'sandbox': {'sender': 'Acme'}}, {'provider': 1, 'sandbox': 2, 'sandbox.sender': 3})
    """
    import yaml  # only config files need it; a client built from settings does not

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", file=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=str(path), line=mark.line + 1 if mark else None) from None
    return data, (_line_map(node) if node is not None else {})


def settings_from_file(
    path: str | Path, provider: str | None = None, env: Mapping[str, str] | None = None
) -> ProviderSettings:
    """Read settings from a YAML file (see the module docs for its shape)."""
    data, lines = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("the config file must be a mapping of settings", file=str(path), line=1)
    return settings_from_mapping(data, provider, source=str(path), lines=lines, env=env)


def load_settings(
    provider: str | None = None,
    *,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ProviderSettings:
    """Settings from a file (or ``SMSRELAY_CONFIG``) or the environment, then overrides.

    >>> load_settings("sandbox", env={}).provider
    'sandbox'
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get("SMSRELAY_CONFIG")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config_file:
        base = settings_from_file(config_file, provider, env)
    else:
        # Overrides (e.g. the CLI's --base-url) sit on top of SMSRELAY_* variables.
        try:
            base = settings_from_env(env, provider)
        except ConfigError:
            if not overrides:
                raise
            return settings_from_mapping({"provider": provider or "sandbox", **overrides}, provider, env=env)
    if not overrides:
        return base
    data: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(base) if f.name not in ("options", "source")}
    data.update(base.options)
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return replace(settings_from_mapping(data, base.provider, env=env), source=base.source)
