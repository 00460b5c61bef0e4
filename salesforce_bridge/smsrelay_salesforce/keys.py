"""Every ``bridge.yaml`` key: its default and what it does. The one list the validator and the docs read.

``config.py`` takes the keys each section accepts from here, and ``docs/salesforce.md``
carries :func:`reference_markdown`'s table (a test fails when they differ), so a key cannot
be accepted and undocumented.

>>> python -m smsrelay_salesforce.keys > table.md  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

__all__ = ["KEYS", "Key", "reference_markdown", "section_keys"]


@dataclass(frozen=True)
class Key:
    """One key: ``path`` as written in YAML (``<…>`` stands for a name you choose)."""

    path: str
    default: str
    doc: str


_SALESFORCE = (
    Key("salesforce.auth", "", "How the bridge signs in: `jwt`, `client_credentials` or `token`. Required."),
    Key("salesforce.domain", "", "Your My Domain (`acme.my`, `acme--uat.sandbox.my`); the login URL is "
        "`https://<domain>.salesforce.com`. Needed by `jwt` and `client_credentials` unless `login_url` is set."),
    Key("salesforce.login_url", "from `domain`", "The token endpoint's base URL, in full (e.g. a local org emulator)."),
    Key("salesforce.consumer_key", "", "The External Client App's consumer key (`jwt`, `client_credentials`)."),
    Key("salesforce.username", "", "The integration user (`jwt`)."),
    Key("salesforce.private_key_file", "", "The PEM private key whose certificate the app holds (`jwt`)."),
    Key("salesforce.consumer_secret", "", "`${ENV_VAR}` only: the app's consumer secret (`client_credentials`)."),
    Key("salesforce.instance_url", "", "The org's URL (`token`)."),
    Key("salesforce.access_token", "", "`${ENV_VAR}` only: a session token (`token`; it cannot be renewed)."),
    Key("salesforce.api_version", "62.0", "The REST API version."),
    Key("salesforce.ca_bundle", "the system's", "A CA bundle to trust instead of the system's (a proxy, an emulator)."),
    Key("salesforce.timeout", "120", "Seconds before a Salesforce call is abandoned and retried."),
)  # fmt: skip

_SMS = (
    Key("sms.provider", "sandbox", "The SMS provider: kudosity, smskit, mesms, kaleyra or sandbox."),
    Key("sms.inbox", "none", "The webhook receiver's inbox (SQLite path or `postgresql://` URL): pushed reports, "
        "replies and link hits are read from it, and `sync --follow` follows it. With `sms.accounts`, every "
        "account's events are read from it."),
    Key("sms.accounts", "", "Named provider accounts, each a full `sms` settings block: with `sms.routes`, "
        "`sms` is a [routing config](routing.md) instead of one provider's settings."),
    Key("sms.routes", "", "The ordered routes of a routing config: which accounts send to which numbers."),
)  # fmt: skip

_MAPPING_OBJECTS = (
    Key("mapping.message.object", "SMS_Message__c", "The object of SMS messages."),
    Key("mapping.link_hit.object", "SMS_Link_Hit__c", "The object of link hits."),
    Key("mapping.consent.object", "SMS_Consent__c", "The object of consents (one per number)."),
    Key("mapping.person.mobile", "MobilePhone", "The mobile number field of Contact and Lead, to match replies."),
    Key("mapping.person.opt_out", "SMS_Opt_Out__c", "The checkbox on Contact and Lead that a STOP sets and every "
        "send reads; `null` leaves people's records alone."),
)  # fmt: skip

_SEND = (
    Key("send.where", "see below", "The WHERE clause of the due-records query; `{now}` is the run's time."),
    Key("send.template", "`{{ Body__c }}`", "The Jinja2 body over the record's fields and relationship paths."),
    Key("send.country", "the provider's region", "The country of numbers written without `+`."),
    Key("send.sender", "the provider's sender", "The sender when neither the record nor its owner has one."),
    Key("send.user_field", "OwnerId", "The user field whose value keys `send.users`."),
    Key("send.users.<user Id>.sender", "", "That user's sender."),
    Key("send.users.<user Id>.country", "", "That user's default country."),
    Key("send.track_links", "false", "Ask the provider to shorten and track links (link hits)."),
    Key("send.max_per_run", "0", "At most this many records a run; 0: everything that is due."),
)  # fmt: skip

_LIMITS = (
    Key("limits.batch_size", "200", "Records per sObject Collections call (Salesforce's maximum is 200)."),
    Key("limits.bulk_threshold", "2000", "Above this many records, write with one Bulk API 2.0 job."),
    Key("limits.api_ceiling", "90%", "Pause when the org's daily API usage reaches this share."),
    Key("limits.send_chunk", "10000", "Records claimed and sent per round."),
    Key("limits.event_page", "1000", "Events read from the feed per page."),
    Key("limits.pull_window", "20000", "Records written per event window (one cursor commit each)."),
    Key("limits.retries", "4", "Retries of a Salesforce call that failed with 5xx, a lock or a dropped connection."),
    Key("limits.follow_batch", "200", "`sync --follow`: write when a batch holds this many records."),
    Key("limits.follow_wait", "1.0", "`sync --follow`: or when its first event has waited this many seconds."),
)  # fmt: skip

_TOP = (Key("state_file", "smsrelay-salesforce.db", "The bridge's SQLite state (cursor, run log, lock), "
            "relative to bridge.yaml."),)  # fmt: skip


def _mapping_fields() -> tuple[Key, ...]:
    from smsrelay_salesforce.config import DEFAULT_FIELDS, EXTERNAL_IDS, FIELD_TYPES, OPTIONAL_FIELDS, READ_PATHS

    out = []
    for logical, fields in DEFAULT_FIELDS.items():
        for name, api in fields.items():
            notes = [f"a {' or '.join(sorted(FIELD_TYPES.get(name, {'any'})))} field"]
            if (logical, name) in EXTERNAL_IDS:
                notes.append("an External ID")
            if (logical, name) in OPTIONAL_FIELDS:
                notes.append("may be `null`")
            if (logical, name) in READ_PATHS:
                notes.append("or relationship paths in a fallback order")
            out.append(Key(f"mapping.{logical}.fields.{name}", api, "; ".join(notes) + "."))
    return tuple(out)


def _sms_common() -> tuple[Key, ...]:
    from smsrelay import ProviderSettings

    docs = {
        "api_key": "`${ENV_VAR}` only: the provider's API key.",
        "api_secret": "`${ENV_VAR}` only: the provider's API secret, where it has one.",
        "webhook_secret": "`${ENV_VAR}` only: the secret the provider signs pushes with.",
        "webhook_secret_previous": "The webhook secret being rotated out.",
        "base_url": "The provider's API URL (an emulator, a regional endpoint).",
        "sender": "The provider account's sender.",
        "default_region": "The country of numbers written without `+`.",
        "rate_limit": "Calls a second to the provider.",
        "timeout": "Seconds before a provider call is abandoned.",
        "retries": "Retries of a provider call that is safe to repeat.",
        "concurrency": "Provider calls in flight at once.",
    }
    out = []
    for f in dataclasses.fields(ProviderSettings):
        if f.name in docs:
            default = "" if f.default in (None, dataclasses.MISSING) else str(f.default)
            out.append(Key(f"sms.{f.name}", default, docs[f.name]))
    sandbox = "`path`, `sent_after`, `delivered_after`, `reply_after`, `validity`, `max_chars`"
    out.append(Key("sms.<provider>.<option>", "", f"The provider's own settings (sandbox: {sandbox}); see its page."))
    return tuple(out)


def _all() -> tuple[Key, ...]:
    return (*_SALESFORCE, *_SMS, *_sms_common(), *_MAPPING_OBJECTS, *_mapping_fields(), *_SEND, *_LIMITS, *_TOP)


KEYS: tuple[Key, ...] = (*_SALESFORCE, *_SMS, *_MAPPING_OBJECTS, *_SEND, *_LIMITS, *_TOP)


def section_keys(section: str) -> set[str]:
    """The keys directly under ``section`` that the validator accepts.

    >>> sorted(section_keys("limits"))[:2]
    ['api_ceiling', 'batch_size']
    """
    prefix = section + "."
    return {k.path[len(prefix) :].split(".")[0] for k in KEYS if k.path.startswith(prefix)}


def reference_markdown() -> str:
    """The table of every key, as ``docs/salesforce.md`` carries it."""
    lines = ["| Key | Default | What it does |", "| --- | --- | --- |"]
    for k in _all():
        default = (
            k.default
            if not k.default or k.default.startswith(("`", "see", "from", "the", "none"))
            else f"`{k.default}`"
        )
        lines.append(f"| `{k.path}` | {default} | {k.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
