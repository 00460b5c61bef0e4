"""``SmsHook``: an Airflow connection turned into a core smsrelay ``Client``.

The connection is read lazily (never in ``__init__``), and arguments given to the
hook override the connection's extras. Secrets live in the password field and in the
extras the field table (``connections.py``) marks: a ``secret`` one is masked whole
(``api_secret``, ``webhook_secret``), a ``dsn`` one only its URL's password
(``rate_limit_store``, ``journal``). A ``client_only`` extra (``journal``, the client's
send journal: a path or URL, as ``SMSRELAY_JOURNAL``) is never a provider setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from smsrelay_airflow._compat import BaseHook, mask_secret
from smsrelay_airflow.connections import BACKENDS, ConnField, backend_for_conn_type, ui_field_behaviour

if TYPE_CHECKING:
    from smsrelay import Client, Delivery, EventPage, ProviderSettings, Router, RoutingConfig, SendResult

__all__ = [
    "KaleyraSmsHook",
    "KudositySmsHook",
    "MeSmsSmsHook",
    "SandboxSmsHook",
    "SmsHook",
    "SmsKitSmsHook",
    "journal_for_connection",
    "routing_for_connection",
    "settings_for_connection",
]

# Which connection attribute holds each core setting; everything else is an extra.
_FROM_CONN = {"api_key": "password", "sid": "login"}
# Every backend's extras: the extra 'provider' may pick a backend other than the type's, so a
# name marked in any backend's form is treated so in all.
_FIELDS: list[tuple[str, ConnField]] = [(name, f) for b in BACKENDS.values() for name, f in b.fields.items()]
# api_key is the password field's; Airflow masks that, but not the hook's api_key= argument.
_SECRETS = ("api_key", *dict.fromkeys(name for name, f in _FIELDS if f.secret and not f.dsn))
_DSNS = tuple(dict.fromkeys(name for name, f in _FIELDS if f.dsn))
_CLIENT_ONLY = tuple(dict.fromkeys(name for name, f in _FIELDS if f.client_only))
_MASKED = (*_SECRETS, *_DSNS)


def _extras(conn: Any) -> dict[str, Any]:
    raw = conn.extra_dejson if conn.extra else {}
    prefix = f"extra__{conn.conn_type}__"
    out: dict[str, Any] = {}
    for key, value in raw.items():
        # The 2.x UI wrote extras as extra__<type>__<field>, which Slack's provider reads too:
        # https://github.com/apache/airflow/blob/main/providers/slack/src/airflow/providers/slack/utils/__init__.py
        name = key[len(prefix) :] if key.startswith(prefix) else key
        if value is None or value == "":
            continue
        out[name] = value
    return out


def _mask_secrets(values: Mapping[str, Any]) -> None:
    """Register with Airflow's masker the secrets among ``values`` (by field name), as the field table marks them.

    The core's own secret settings count too: ``webhook_secret_previous`` is no form field,
    but a hook argument or a routing file may carry it.
    """
    from smsrelay import SECRET_FIELDS

    for name in dict.fromkeys([*_SECRETS, *SECRET_FIELDS]):
        if values.get(name):
            mask_secret(str(values[name]))
    for name in _DSNS:
        if isinstance(values.get(name), str):
            _mask_dsn_password(values[name])


def _mask_dsn_password(dsn: str) -> None:
    """Mask a URL extra's password (a ``dsn`` field) in task logs: Airflow masks extras by name, not inside URLs."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(dsn).password
    except ValueError:  # not a URL: the core refuses it with a ConfigError
        return
    if password:
        mask_secret(password)


def _base_url(conn: Any) -> str | None:
    host = (conn.host or "").strip()
    if not host:
        return None
    if "://" not in host:
        # A URI connection's host has no scheme; schema carries it, as HttpHook reads it:
        # https://airflow.apache.org/docs/apache-airflow-providers-http/stable/connections/http.html
        host = f"{conn.schema or 'https'}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host.rstrip("/")


def settings_for_connection(
    conn: Any, overrides: Mapping[str, Any] | None = None, *, mask: bool = True
) -> ProviderSettings:
    """Core settings from an Airflow connection; ``overrides`` (hook arguments) win.

    Raises ``smsrelay.ConfigError`` naming the connection and the field at fault.

    >>> from airflow.sdk import Connection  # doctest: +SKIP
    >>> settings_for_connection(Connection(conn_id="sms", conn_type="smsrelay_sandbox")).provider  # doctest: +SKIP
    'sandbox'
    """
    from smsrelay import ConfigError, missing_credentials, settings_from_mapping

    source = f"Airflow connection {conn.conn_id!r}"
    extras = {k: v for k, v in _extras(conn).items() if k not in _CLIENT_ONLY}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and k not in _CLIENT_ONLY}
    backend = backend_for_conn_type(conn.conn_type)
    provider = overrides.pop("provider", None) or extras.pop("provider", None) or (backend and backend.provider)
    extras.pop("provider", None)
    if not provider:
        types = ", ".join(BACKENDS)
        raise ConfigError(
            f"has type {conn.conn_type!r}; use one of {types}, or set the extra 'provider'",
            field="conn_type",
            file=source,
        )
    data: dict[str, Any] = dict(extras)
    if url := _base_url(conn):
        data["base_url"] = url
    if conn.password:
        data["api_key"] = conn.password
    if conn.login and provider == "kaleyra":
        data["sid"] = conn.login
    data.update(overrides)
    if provider == "sandbox" and isinstance(data.get("path"), str):
        from pathlib import Path

        data["path"] = str(Path(data["path"]).expanduser())
    if mask:
        _mask_secrets(data)
    try:
        missing = missing_credentials(provider, data)
    except ConfigError as exc:
        raise ConfigError(exc.detail, field="provider", file=source) from None
    if missing:
        where = _FROM_CONN.get(missing[0], f"extra {missing[0]!r}")
        # No field= here: "field 'api_key': <text>" reads as a credential to the core's redaction.
        raise ConfigError(f"{provider} needs {missing[0]}; put it in the connection's {where} field", file=source)
    return settings_from_mapping(data, provider, source=source, env={})


def journal_for_connection(conn: Any, overrides: Mapping[str, Any] | None = None, *, mask: bool = True) -> str | None:
    """The send journal a connection names (extra ``journal``; the hook's ``journal=`` wins), if any.

    A path or a URL (PostgreSQL when the workers are on several machines). None leaves it to
    ``SMSRELAY_JOURNAL`` in the worker's environment, as ``Client`` reads it.

    >>> extra = json.dumps({"journal": "postgresql://airflow@db/smsrelay"})  # doctest: +SKIP
    >>> journal_for_connection(Connection(conn_id="sms", conn_type="smsrelay_mesms", extra=extra))  # doctest: +SKIP
    'postgresql://airflow@db/smsrelay'
    """
    value = (overrides or {}).get("journal") or _extras(conn).get("journal")
    if not value:
        return None
    text = str(value)
    if "://" in text:
        if mask:
            _mask_secrets({"journal": text})
        return text
    from pathlib import Path

    return str(Path(text).expanduser())


def routing_for_connection(conn: Any) -> RoutingConfig | None:
    """The routing config a connection's extra holds (``routing``) or names (``routing_file``), if any.

    ``${VAR}``s in it are read from the worker's environment. Raises ``smsrelay.ConfigError``
    naming the connection (or the file), the line and the key.

    >>> routing = {"accounts": {"s": {"provider": "sandbox"}}, "routes": [{"accounts": ["s"]}]}  # doctest: +SKIP
    >>> extra = json.dumps({"routing": routing})  # doctest: +SKIP
    >>> conn = Connection(conn_id="sms", conn_type="smsrelay_sandbox", extra=extra)  # doctest: +SKIP
    >>> routing_for_connection(conn).routes[0].accounts  # doctest: +SKIP
    ('s',)
    """
    import json

    from smsrelay import ConfigError, load_routing, routing_from_mapping

    extras = _extras(conn)
    inline, path = extras.get("routing"), extras.get("routing_file")
    if inline is None and path is None:
        return None
    source = f"Airflow connection {conn.conn_id!r}"
    if inline is not None and path is not None:
        raise ConfigError("give the extra 'routing' or 'routing_file', not both", file=source)
    if path is not None:
        from pathlib import Path

        return load_routing(Path(str(path)).expanduser())
    if isinstance(inline, str):  # the extra's field holds the config as JSON text
        try:
            inline = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"is not valid JSON: {exc.msg} at line {exc.lineno}", field="routing", file=source
            ) from None
    return routing_from_mapping(inline, source=f"{source}, extra 'routing'")


class SmsHook(BaseHook):
    """Send SMS and read reports and replies through an smsrelay connection.

    Works with every ``smsrelay_*`` connection type; the type picks the backend.

    >>> hook = SmsHook(sms_conn_id="smsrelay_default", sender="Acme")  # doctest: +SKIP
    >>> hook.send(["+61491570156"], "Hi {{ name }}", vars={"name": "Ann"}).message_ids  # doctest: +SKIP
    ['sbx-...']
    """

    conn_name_attr = "sms_conn_id"
    default_conn_name = "smsrelay_default"
    conn_type = "smsrelay_sandbox"
    hook_name = "SMS (smsrelay)"

    def __init__(
        self,
        sms_conn_id: str = default_conn_name,
        *,
        provider: str | None = None,
        sender: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        default_region: str | None = None,
        connection: Any = None,
        mask_secrets: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        self.sms_conn_id = sms_conn_id
        self.overrides: dict[str, Any] = {
            "provider": provider,
            "sender": sender,
            "base_url": base_url,
            "timeout": timeout,
            "default_region": default_region,
            **options,
        }
        self._connection = connection
        # Triggers pass False: a synchronous mask_secret call from the triggerer's loop can deadlock
        # (common-compat's get_async_connection, https://github.com/apache/airflow/tree/main/providers/common/compat);
        # the connection they fetch is masked by Airflow already.
        self.mask_secrets = mask_secrets

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sms_conn_id={self.sms_conn_id!r})"

    @cached_property
    def connection(self) -> Any:
        return self._connection if self._connection is not None else self.get_connection(self.sms_conn_id)

    @cached_property
    def router(self) -> Router | None:
        """A ``Router`` when the connection's extra holds a routing config (``routing`` or ``routing_file``)."""
        from smsrelay import Router

        config = routing_for_connection(self.connection)
        if config is None:
            return None
        for settings in config.accounts.values() if self.mask_secrets else ():
            # A marked field is a setting of its own (api_secret) or a provider option.
            _mask_secrets({name: getattr(settings, name, None) or settings.option(name) for name in _MASKED})
        return Router(config, journal=self.journal)

    @cached_property
    def settings(self) -> ProviderSettings:
        if self.router is not None:
            from smsrelay import ConfigError

            # Each account has its own settings block; hook.router holds a client per account.
            raise ConfigError(
                "routes through several accounts (extra 'routing'), each with its own settings: "
                "use hook.router, or name the account (status(ids, account=...))",
                file=f"Airflow connection {self.connection.conn_id!r}",
            )
        return settings_for_connection(self.connection, self.overrides, mask=self.mask_secrets)

    @property
    def default_region(self) -> str | None:
        """The region for numbers written without a country code: the routing config's, or the connection's."""
        return self.router.config.default_region if self.router is not None else self.settings.default_region

    @cached_property
    def journal(self) -> str | None:
        """The send journal's path or URL (extra ``journal``); None: ``SMSRELAY_JOURNAL``, if set."""
        return journal_for_connection(self.connection, self.overrides, mask=self.mask_secrets)

    @cached_property
    def client(self) -> Client:
        from smsrelay import Client

        return Client(settings=self.settings, journal=self.journal)

    def get_conn(self) -> Client:
        """The core client (built on first use)."""
        return self.client

    def client_for(self, account: str | None = None) -> Client:
        """The client of ``account`` on a routed connection; the connection's one client when None.

        Raises ``smsrelay.ConfigError`` naming the connection when the account is unknown,
        or when a routed connection is asked without naming one.
        """
        from smsrelay import ConfigError

        source = f"Airflow connection {self.connection.conn_id!r}"
        if self.router is None:
            if account is not None:
                raise ConfigError(f"has no account {account!r}: it does not route (no extra 'routing')", file=source)
            return self.client
        if account is None:
            raise ConfigError(
                "routes through several accounts: name the account of these messages "
                "(pass SendSmsOperator results, whose rows name it, or {account: [ids]})",
                file=source,
            )
        if account not in self.router.clients:
            names = ", ".join(self.router.clients)
            raise ConfigError(f"has no account named {account!r}; its accounts are {names}", file=source)
        return self.router.clients[account]

    def close(self) -> None:
        if self.__dict__.get("router") is not None:
            self.router.close()  # type: ignore[union-attr]
            del self.__dict__["router"]
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def send(
        self,
        to: str | Sequence[Any],
        message: str,
        *,
        sender: str | None = None,
        vars: Mapping[str, Any] | None = None,
        key: str | None = None,
        on_invalid: str = "skip",
    ) -> SendResult:
        """Send ``message`` to one number or many; ``key`` makes a resend a no-op.

        >>> SmsHook().send("+61491570156", "Hi", key="dag/run/task/-1").all_accepted  # doctest: +SKIP
        True
        """
        if self.router is not None:
            routed = self.router.send(to, message, sender=sender, vars=vars, key=key, on_invalid=on_invalid)  # type: ignore[arg-type]
            return routed.as_send_result()
        return self.client.send(to, message, sender=sender, vars=vars, key=key, on_invalid=on_invalid)  # type: ignore[arg-type]

    def status(self, message_ids: Sequence[str], *, account: str | None = None) -> dict[str, Delivery]:
        """The latest delivery report of each message; on a routed connection, of ``account``'s messages."""
        return self.client_for(account).status(list(message_ids))

    def events(self, since: str | None = None, *, limit: int = 500, account: str | None = None) -> EventPage:
        """One page of events (reports, replies, opt-outs) after the cursor ``since``.

        On a routed connection, of one ``account``; ``hook.router.events()`` merges every account's.
        """
        return self.client_for(account).events(since, limit=limit)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call, for the connection form's Test button."""
        from smsrelay import SmsRelayError

        try:
            if self.router is not None:
                for client in self.router.clients.values():
                    client.check()
                return True, f"Connected to every account: {', '.join(self.router.clients)}."
            self.client.check()
        except SmsRelayError as exc:
            return False, str(exc)
        return True, f"Connected to {self.settings.provider}."

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of this hook's connection type, for Airflow < 3.2 forms."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField
        from wtforms.validators import Optional

        backend = BACKENDS.get(cls.conn_type)
        widgets: dict[str, Any] = {}
        for name, f in (backend.fields if backend else {}).items():
            if f.secret:
                widgets[name] = PasswordField(lazy_gettext(f.label), widget=BS3PasswordFieldWidget())
            else:
                widgets[name] = StringField(
                    lazy_gettext(f.label),
                    widget=BS3TextFieldWidget(),
                    validators=[Optional()],
                    description=f.description,
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden fields, labels and placeholders, for Airflow < 3.2 forms."""
        backend = BACKENDS.get(cls.conn_type)
        if backend is None:
            return {"hidden_fields": [], "relabeling": {}}
        return ui_field_behaviour(backend, kebab=False)


class KudositySmsHook(SmsHook):
    """``SmsHook`` for ``smsrelay_kudosity`` connections."""

    conn_type = "smsrelay_kudosity"
    hook_name = BACKENDS[conn_type].hook_name


class SmsKitSmsHook(SmsHook):
    """``SmsHook`` for ``smsrelay_smskit`` connections."""

    conn_type = "smsrelay_smskit"
    hook_name = BACKENDS[conn_type].hook_name


class MeSmsSmsHook(SmsHook):
    """``SmsHook`` for ``smsrelay_mesms`` connections."""

    conn_type = "smsrelay_mesms"
    hook_name = BACKENDS[conn_type].hook_name


class KaleyraSmsHook(SmsHook):
    """``SmsHook`` for ``smsrelay_kaleyra`` connections."""

    conn_type = "smsrelay_kaleyra"
    hook_name = BACKENDS[conn_type].hook_name


class SandboxSmsHook(SmsHook):
    """``SmsHook`` for ``smsrelay_sandbox`` connections."""

    conn_type = "smsrelay_sandbox"
    hook_name = BACKENDS[conn_type].hook_name
