"""The connection types: one per smsrelay backend, each with its own form fields.

Pure data, so ``get_provider_info()`` stays cheap: Airflow reads it at start-up.
The same table feeds the declarative ``conn-fields`` (Airflow >= 3.2) and the
hooks' widget methods (earlier versions), so the two never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BACKENDS", "Backend", "ConnField", "backend_for_conn_type", "conn_fields", "ui_field_behaviour"]

HOOKS = "smsrelay_airflow.hooks.sms"


@dataclass(frozen=True)
class ConnField:
    """One extra field of a connection form; ``kind`` is a JSON-schema type.

    The hook masks what these flags say in task logs: a ``secret`` whole, a ``dsn`` (a URL)
    only its password. A ``client_only`` field is the client's (``Client(journal=...)``),
    never a provider setting.
    """

    label: str
    kind: str = "string"
    description: str = ""
    secret: bool = False
    placeholder: str | None = None
    dsn: bool = False
    client_only: bool = False


@dataclass(frozen=True)
class Backend:
    """A connection type and the smsrelay provider behind it."""

    conn_type: str
    provider: str
    hook_class: str
    hook_name: str
    fields: dict[str, ConnField]
    hidden: tuple[str, ...]
    relabeling: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)


_HTTP_FIELDS: dict[str, ConnField] = {
    "sender": ConnField("Sender", description="Default sender id or number, e.g. Acme or +61491570156."),
    "default_region": ConnField("Default region", description="Region for numbers given without +, e.g. AU."),
    "timeout": ConnField("Timeout (s)", "number", "Seconds to wait for each provider call (default 30)."),
    "rate_limit": ConnField("Rate limit (calls/s)", "number", "Cap on provider calls per second."),
    "rate_limit_store": ConnField(
        "Shared rate limit (PostgreSQL URL)",
        description="Every worker on this account takes turns from one bucket in this database, "
        "e.g. postgresql://airflow@db/smsrelay.",
        secret=True,  # the form hides it: the URL may hold a password
        dsn=True,
    ),
    "journal": ConnField(
        "Send journal (path or PostgreSQL URL)",
        description="Each message's key is recorded here before it is sent, so a retry after a killed "
        "try sends nothing twice; one every worker reaches, e.g. postgresql://airflow@db/smsrelay.",
        secret=True,  # the form hides it: the URL may hold a password
        dsn=True,
        client_only=True,
    ),
    "webhook_secret": ConnField(
        "Webhook secret", description="Authenticates the provider's pushes (reports, replies).", secret=True
    ),
}

BACKENDS: dict[str, Backend] = {
    b.conn_type: b
    for b in (
        Backend(
            "smsrelay_kudosity",
            "kudosity",
            f"{HOOKS}.KudositySmsHook",
            "SMS: Kudosity",
            {
                "api": ConnField("API version", description="v2 (default, x-api-key) or v1 (key and secret)."),
                "api_secret": ConnField("API secret (V1)", description="Only for the V1 API.", secret=True),
                **_HTTP_FIELDS,
            },
            hidden=("login", "port", "schema"),
            relabeling={"host": "Base URL (optional)", "password": "API key"},
            placeholders={"host": "https://api.transmitmessage.com", "api": "v2"},
        ),
        Backend(
            "smsrelay_smskit",
            "smskit",
            f"{HOOKS}.SmsKitSmsHook",
            "SMS: SMSKit",
            dict(_HTTP_FIELDS),
            hidden=("login", "port", "schema"),
            relabeling={"host": "Base URL (optional)", "password": "API key"},
            placeholders={"host": "https://api.smskit.cloud", "password": "sk_live_..."},
        ),
        Backend(
            "smsrelay_mesms",
            "mesms",
            f"{HOOKS}.MeSmsSmsHook",
            "SMS: ME-SMS",
            dict(_HTTP_FIELDS),
            hidden=("login", "port", "schema"),
            relabeling={"host": "Base URL (optional)", "password": "API key"},
        ),
        Backend(
            "smsrelay_kaleyra",
            "kaleyra",
            f"{HOOKS}.KaleyraSmsHook",
            "SMS: Kaleyra",
            dict(_HTTP_FIELDS),
            hidden=("port", "schema"),
            relabeling={"host": "Base URL (optional)", "login": "Account SID", "password": "API key"},
            placeholders={"host": "https://api.kaleyra.io", "login": "HXIN..."},
        ),
        Backend(
            "smsrelay_sandbox",
            "sandbox",
            f"{HOOKS}.SandboxSmsHook",
            "SMS: smsrelay sandbox",
            {
                "path": ConnField("State file", description="SQLite file shared by every process using it."),
                "sender": _HTTP_FIELDS["sender"],
                "default_region": _HTTP_FIELDS["default_region"],
                "sent_after": ConnField("Sent after (s)", "number", "Simulated delay until 'sent'."),
                "delivered_after": ConnField("Delivered after (s)", "number", "Simulated delay until the outcome."),
                "reply_after": ConnField("Reply after (s)", "number", "Simulated delay of magic-number replies."),
                "validity": ConnField("Validity (s)", "number", "When a message without a report turns unknown."),
            },
            hidden=("host", "login", "password", "port", "schema"),
            placeholders={"path": "~/.local/state/smsrelay/sandbox.db"},
        ),
    )
}


def backend_for_conn_type(conn_type: str | None) -> Backend | None:
    """The backend of a connection type (``smsrelay_kudosity`` -> Kudosity), if it is ours.

    >>> backend_for_conn_type("smsrelay_sandbox").provider
    'sandbox'
    """
    return BACKENDS.get((conn_type or "").lower().replace("-", "_"))


def conn_fields(backend: Backend) -> dict[str, Any]:
    """The declarative ``conn-fields`` of a connection type (Airflow >= 3.2)."""
    out: dict[str, Any] = {}
    for name, f in backend.fields.items():
        schema: dict[str, Any] = {"type": [f.kind, "null"]}
        if f.secret:
            schema["format"] = "password"
        out[name] = {"label": f.label, "schema": schema, "description": f.description}
    return out


def ui_field_behaviour(backend: Backend, *, kebab: bool) -> dict[str, Any]:
    """Hidden fields, labels and placeholders; kebab-case keys for provider info."""
    sep = "-" if kebab else "_"
    return {
        f"hidden{sep}fields": list(backend.hidden),
        "relabeling": dict(backend.relabeling),
        "placeholders": dict(backend.placeholders),
    }
