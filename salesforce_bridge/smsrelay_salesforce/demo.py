"""``make demo``, Salesforce part: one bridge sync against the org emulator and the sandbox.

Offline on loopback: an HTTPS org emulator (with a throwaway CA) holding 250
Contacts and their queued ``SMS_Message__c`` records, the embedded sandbox as the
SMS provider, and a ``bridge.yaml`` written to a temporary directory. One sync
sends, the next writes delivery reports, replies, link hits and opt-outs back.

>>> main()  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from smsrelay_salesforce.config import load_config
from smsrelay_salesforce.sync import Bridge

__all__ = ["main"]

N = 250
# The sandbox's magic endings: 0001 failed, 0004 reply YES, 0006 link hit, 0007 STOP.
OUTCOMES = ["0001", "0004", "0006", "0007"]


def _numbers() -> list[str]:
    special = [f"+614915{7 + i}{m}" for i in range(3) for m in OUTCOMES]
    return special + [f"+6141{j:07d}" for j in range(10, 10 + N - len(special))]


def _seed(org: Any) -> list[str]:
    numbers = _numbers()
    contacts = org.insert(
        "Contact",
        [
            # Free-text phones, as people type them; the bridge normalises with the default country.
            {"FirstName": f"Pat{i}", "LastName": "Demo", "MobilePhone": "0" + n[3:6] + " " + n[6:9] + " " + n[9:]}
            for i, n in enumerate(numbers)
        ],
    )
    org.insert(
        "SMS_Message__c",
        [
            {"To__c": "0" + n[3:], "Contact__c": c, "Status__c": "Queued", "Body__c": "your order has shipped"}
            for n, c in zip(numbers, contacts, strict=True)
        ]
        + [{"To__c": "12345", "Status__c": "Queued", "Body__c": "a number that cannot exist"}],
    )
    return list(contacts)


def main() -> int:
    """Run the demo; print each sync's summary and a few records."""
    from smsrelay_salesforce.testing import OrgEmulator, make_tls

    with tempfile.TemporaryDirectory(prefix="smsrelay-sf-demo-") as tmp:
        d = Path(tmp)
        tls = make_tls(d / "tls")
        org = OrgEmulator(ssl_context=tls.ssl_context)
        org.start()
        try:
            contacts = _seed(org)
            config = {
                "salesforce": {
                    "auth": "token",
                    "instance_url": org.url,
                    "access_token": "${SF_DEMO_TOKEN}",
                    "ca_bundle": str(tls.ca_path),
                },
                "sms": {
                    "provider": "sandbox",
                    "path": str(d / "sandbox.db"),
                    "sent_after": 0.2,
                    "delivered_after": 1.0,
                    "reply_after": 0.5,
                },
                "send": {
                    "country": "AU",
                    "sender": "AcmeShop",
                    "template": "Hi {{ Contact__r.FirstName }}, {{ Body__c }}",
                },
                "state_file": str(d / "bridge-state.db"),
            }
            path = d / "bridge.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            print(f"org emulator: {org.url} ({N} Contacts, {N + 1} queued SMS_Message__c records)")
            print(f"bridge.yaml:  {path}\n")
            with Bridge(load_config(path, env={"SF_DEMO_TOKEN": org.issue_token()})) as bridge:
                for step, title in enumerate(
                    (
                        "sync 1: claim, send and write back",
                        "sync 2, two seconds later: delivery reports, replies, link hits and STOPs",
                        "sync 3: a new message to a number that replied STOP",
                    )
                ):
                    if step == 1:
                        time.sleep(2)  # the sandbox delivers and replies on the wall clock
                    if step == 2:
                        org.insert(
                            "SMS_Message__c",
                            [
                                {
                                    "To__c": "0491 570 007",
                                    "Status__c": "Queued",
                                    "Body__c": "sale!",
                                    "Contact__c": contacts[0],
                                }
                            ],
                        )
                    summary = bridge.sync()
                    print(f"== {title}")
                    print(summary.table() if step < 2 else "", summary.line(), "\n", sep="\n" if step < 2 else "")
            out = {r["To__c"]: r for r in org.records("SMS_Message__c", "Direction__c = 'Outbound'")}
            print("== a few records")
            for to in ("0491570001", "0491570004", "0491570007", "0491 570 007", "12345"):
                r = out[to]
                print(
                    f"  {to:<11} Status__c={r['Status__c']:<10} Delivery_Status__c={r.get('Delivery_Status__c')!s:<10}"
                    f" {r.get('Error_Message__c') or ''}"
                )
            for r in org.records("SMS_Message__c", "Direction__c = 'Inbound'")[:3]:
                print(f"  reply from {r['Phone_E164__c']}: {r['Body__c']!r} (In_Reply_To__c={r['In_Reply_To__c']})")
            print(f"  consents: {[c['Phone__c'] for c in org.records('SMS_Consent__c')]}")
        finally:
            org.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
