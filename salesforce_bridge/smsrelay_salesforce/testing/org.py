"""The org emulator: one HTTPS Salesforce org on loopback, its APIs joined, and the standalone server."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from smsrelay import ConfigError
from smsrelay.emulators.options import parse_duration
from smsrelay_salesforce.testing.auth import AuthApi, make_jwt_credentials, make_tls
from smsrelay_salesforce.testing.bulk import BulkApi
from smsrelay_salesforce.testing.rest import RestApi
from smsrelay_salesforce.testing.store import _describe_ignored

log = logging.getLogger("smsrelay.salesforce.emulator")


class OrgEmulator(AuthApi, RestApi, BulkApi):
    """An HTTPS Salesforce org on loopback (see :mod:`smsrelay_salesforce.testing`)."""


# --------------------------------------------------------------------------- standalone


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    metadata_dir: str | pathlib.Path | None = None,
    state_dir: str | pathlib.Path | None = None,
    daily_api_limit: int = 15_000,
    seed: int = 0,
    out: Any = None,
    latency: float = 0.0,
    jitter: float = 0.0,
) -> OrgEmulator:
    """Start an HTTPS org emulator with fresh TLS and JWT material; print how to connect; return it running.

    ``state_dir`` receives ``ca.pem``, ``server.key`` and ``server.crt`` (default: a new
    temporary directory). ``seed`` creates that many Contacts and queued
    ``SMS_Message__c`` records for a first ``sync --dry-run``. ``latency`` (± ``jitter``)
    seconds pass before each answer, as a real org's round trip does.
    """
    out = out or sys.stdout
    directory = pathlib.Path(state_dir) if state_dir else pathlib.Path(tempfile.mkdtemp(prefix="sf-org-emulator-"))
    tls = make_tls(directory)
    creds = make_jwt_credentials(directory)
    org = OrgEmulator(
        host=host,
        port=port,
        ssl_context=tls.ssl_context,
        metadata_dir=metadata_dir,
        certificate_pem=creds.certificate_pem,
        daily_api_limit=daily_api_limit,
        latency=latency,
        jitter=jitter,
    )
    org.start()
    if seed:
        seed_demo(org, seed)
    token = org.issue_token()
    print(f"Salesforce org emulator listening on {org.url}", file=out)
    print(f"  CA bundle:        {tls.ca_path}   (export REQUESTS_CA_BUNDLE={tls.ca_path})", file=out)
    print(f"  instance_url:     {org.url}", file=out)
    print(f"  access_token:     {token}", file=out)
    print(f"  JWT consumer key: {org.consumer_key}", file=out)
    print(f"  JWT username:     {org.username}", file=out)
    print(f"  JWT private key:  {creds.private_key_path}", file=out)
    print(f"  client secret:    {org.consumer_secret}", file=out)
    print(f"  objects:          {', '.join(o.name for o in org.schema)}", file=out)
    if latency or jitter:
        print(f"  latency:          {latency * 1000:g} ms ± {jitter * 1000:g} ms per answer", file=out)
    if org.ignored_metadata:
        print(f"  ignored (UI):     {_describe_ignored(org.ignored_metadata)}", file=out)
    out.flush()
    return org


def seed_demo(org: OrgEmulator, n: int) -> None:
    """``n`` Contacts with mobiles and one queued outbound ``SMS_Message__c`` each (if the object exists)."""
    # Last four digits from 1000 up: plain deliveries under the sandbox's magic-number table.
    phones = [f"+6149157{1000 + i % 9000:04d}" for i in range(1, n + 1)]
    contacts = org.insert(
        "Contact", [{"FirstName": f"Demo{i}", "LastName": "Contact", "MobilePhone": p} for i, p in enumerate(phones, 1)]
    )
    if org.schema.has("SMS_Message__c"):
        obj = org.schema.object("SMS_Message__c")
        rows = []
        for i, cid in enumerate(contacts, start=1):
            row: dict[str, Any] = {"Contact__c": cid} if obj.has("Contact__c") else {}
            if obj.has("To__c"):
                row["To__c"] = phones[i - 1]
            if obj.has("Status__c"):
                row["Status__c"] = "Queued"
            if obj.has("Direction__c"):
                f = obj.field("Direction__c")
                row["Direction__c"] = "Outbound" if "Outbound" in f.picklist_values or not f.picklist_values else None
            rows.append({k: v for k, v in row.items() if v is not None})
        org.insert("SMS_Message__c", rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smsrelay_salesforce.testing [--port N] [--metadata-dir D] [--state-dir D] [--seed N]``."""
    p = argparse.ArgumentParser(prog="smsrelay-salesforce emulate-org", description="Run the Salesforce org emulator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("SF_EMULATOR_PORT", "0")))
    p.add_argument("--metadata-dir", default=None, help="DX metadata to load (default: the shipped metadata)")
    p.add_argument("--state-dir", default=None, help="where to write ca.pem, server.key and server.crt")
    p.add_argument("--api-limit", type=int, default=15_000, help="DailyApiRequests allocation")
    p.add_argument("--seed", type=int, default=0, help="create N demo Contacts with queued messages")
    p.add_argument("--latency", default="0", help="wait before each answer: 150ms, 0.15s or 0.15 (default 0)")
    p.add_argument("--jitter", default="0", help="± uniform spread around --latency, e.g. 30ms (default 0)")
    args = p.parse_args(argv)
    try:
        latency, jitter = parse_duration(args.latency, "--latency"), parse_duration(args.jitter, "--jitter")
    except ConfigError as exc:
        p.error(str(exc))
    org = serve(
        host=args.host,
        port=args.port,
        metadata_dir=args.metadata_dir,
        state_dir=args.state_dir,
        daily_api_limit=args.api_limit,
        seed=args.seed,
        latency=latency,
        jitter=jitter,
    )
    org.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
