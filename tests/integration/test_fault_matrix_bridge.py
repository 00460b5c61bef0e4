"""The fault matrix through the Salesforce bridge's push: records, not results, must tell the truth.

Each send-path fault (at a list lag of 8 s) meets a bridge sync of four queued records
against the Kudosity V2 emulator; a second sync, once the network is well again, settles
what the first left in doubt. Counted at the emulator: no record's message is stored
twice, a record marked Sent has exactly one message and its id, a record marked Failed
or Rejected has none, a record queued again (throttled) has none, and a record left
Sending (in doubt) has at most one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from smsrelay.emulators.base import FaultCase, fault_matrix
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.fixtures.kudosity import SENDER, V2_KEY

MSG = "SMS_Message__c"
NUMBERS = [f"+6149157014{n}" for n in range(4)]
CASES = [c for c in fault_matrix(lags=[8], timeout=0.5) if c.faults]


def check(sf_org: Any, emu: KudosityV2Emulator) -> Counter[str]:
    stored = Counter(str(m["recipient"]) for m in emu.outbound)
    tally: Counter[str] = Counter()
    for rec in sf_org.records(MSG, "Direction__c = 'Outbound'"):
        n = stored[rec["To__c"].lstrip("+")]
        status = rec["Status__c"]
        tally[status] += 1
        assert n <= 1, ("sent twice", rec)
        if status == "Sent":
            assert n == 1 and rec["Provider_Message_Id__c"], rec
        elif status in ("Failed", "Rejected"):
            assert n == 0 and rec["Error_Message__c"], rec
        elif status == "Queued":
            assert n == 0, rec  # not sent (throttled): queued again for the next sync
        else:
            assert status == "Sending", rec  # in doubt: left for the next sync to reconcile
    return tally


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_bridge_push_never_sends_a_record_twice_nor_loses_one(
    case: FaultCase, make_bridge: Any, sf_org: Any, kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    sf_org.insert(MSG, [{"To__c": n, "Body__c": "Your parcel is on its way", "Status__c": "Queued"} for n in NUMBERS])
    bridge = make_bridge(
        env={"KUDOSITY_KEY": V2_KEY},
        sms={
            "provider": "kudosity",
            "api": "v2",
            "api_key": "${KUDOSITY_KEY}",
            "base_url": kudosity_v2_emulator.url,
            "sender": SENDER,
            "timeout": 0.25,
        },
    )
    kudosity_v2_emulator.inject_case(case, method="POST", path="/v2/sms")
    bridge.sync()
    check(sf_org, kudosity_v2_emulator)
    kudosity_v2_emulator.faults.clear()
    kudosity_v2_emulator.advance(120)
    bridge.sync()
    # With the network well again, the second sync settles or sends every record, once.
    assert check(sf_org, kudosity_v2_emulator) == Counter({"Sent": len(NUMBERS)})
