"""Consent on the person, and the phone number read through relationship paths.

A STOP matched to a Contact or Lead links the consent record to them and sets their
``SMS_Opt_Out__c``; a queued send checks both the consent record and the person's flag. The
mapping's ``to`` takes relationship paths in a fallback order, per record.
Sandbox magic numbers (last four digits): 0007 replies STOP.
"""

from __future__ import annotations

from typing import Any

MSG = "SMS_Message__c"
FALLBACK = ["To__c", "Contact__r.MobilePhone", "Lead__r.MobilePhone"]


def sandbox_numbers(bridge: Any) -> list[str]:
    db = bridge.client.provider._db()
    return sorted(r[0] for r in db.execute("SELECT phone FROM messages"))


def test_a_stop_links_the_consent_to_the_lead_and_flags_the_lead(make_bridge, sf_org, clock) -> None:
    lead = sf_org.insert("Lead", [{"LastName": "Lee", "Company": "Acme", "MobilePhone": "0491 570 007"}])[0]
    sf_org.insert(MSG, [{"To__c": "+61491570007", "Body__c": "Hi", "Status__c": "Queued", "Lead__c": lead}])
    bridge = make_bridge()
    bridge.sync()
    clock.advance(10)
    summary = bridge.sync()
    assert summary.opt_outs == 1 and not summary.failures, summary.errors
    consent = sf_org.records("SMS_Consent__c")
    assert len(consent) == 1 and consent[0]["Lead__c"] == lead and consent[0]["Opted_Out__c"] is True
    assert sf_org.get("Lead", lead)["SMS_Opt_Out__c"] is True
    # Replaying the window changes nothing.
    assert bridge.sync().opt_outs == 0


def test_a_person_flagged_opted_out_is_skipped_without_a_consent_record(make_bridge, sf_org) -> None:
    contact = sf_org.insert("Contact", [{"LastName": "Ng", "MobilePhone": "+61491570300", "SMS_Opt_Out__c": True}])[0]
    ok = sf_org.insert("Contact", [{"LastName": "Li", "MobilePhone": "+61491570301"}])[0]
    sf_org.insert(
        MSG,
        [
            {"To__c": "+61491570300", "Body__c": "Hi", "Status__c": "Queued", "Contact__c": contact},
            {"To__c": "+61491570301", "Body__c": "Hi", "Status__c": "Queued", "Contact__c": ok},
        ],
    )
    bridge = make_bridge()
    summary = bridge.sync(pull=False)
    assert summary.sent == 1 and summary.skipped_opted_out == 1
    rows = {r["To__c"]: r for r in sf_org.records(MSG)}
    assert rows["+61491570300"]["Status__c"] == "Skipped_Opted_Out"
    assert "contact opted out (Contact.SMS_Opt_Out__c)" in rows["+61491570300"]["Error_Message__c"]
    assert sandbox_numbers(bridge) == ["+61491570301"]


def test_the_phone_falls_back_from_the_record_to_the_contact_then_the_lead(make_bridge, sf_org) -> None:
    contact = sf_org.insert("Contact", [{"LastName": "Ng", "MobilePhone": "0491 570 310"}])[0]
    lead = sf_org.insert("Lead", [{"LastName": "Lee", "Company": "Acme", "MobilePhone": "0491 570 320"}])[0]
    both = sf_org.insert("Lead", [{"LastName": "Bo", "Company": "Acme", "MobilePhone": "0491 570 399"}])[0]
    ids = sf_org.insert(
        MSG,
        [
            {"To__c": "0491 570 330", "Body__c": "own", "Status__c": "Queued", "Contact__c": contact},
            {"Body__c": "contact", "Status__c": "Queued", "Contact__c": contact, "Lead__c": both},
            {"Body__c": "lead", "Status__c": "Queued", "Lead__c": lead},
            {"Body__c": "nobody", "Status__c": "Queued"},
        ],
    )
    bridge = make_bridge(mapping={"message": {"fields": {"to": FALLBACK}}})
    assert bridge.check() == []
    summary = bridge.sync(pull=False)
    assert summary.sent == 3 and summary.rejected == 1
    rows = {r["Id"]: r for r in sf_org.records(MSG)}
    assert [rows[i]["Phone_E164__c"] for i in ids[:3]] == ["+61491570330", "+61491570310", "+61491570320"]
    assert rows[ids[3]]["Status__c"] == "Rejected"
    assert sandbox_numbers(bridge) == ["+61491570310", "+61491570320", "+61491570330"]


def test_check_names_a_bad_relationship_path_and_a_missing_person_field(make_bridge, sf_org) -> None:
    bridge = make_bridge(
        mapping={
            "message": {"fields": {"to": ["To__c", "Contact__r.Mobile", "Account__r.Phone"]}},
            "person": {"opt_out": "No_Sms__c"},
        }
    )
    problems = bridge.check()
    assert (
        "mapping.message.fields.to: Contact.Mobile does not exist (or the user cannot see it) (in Contact__r.Mobile)"
        in problems
    )
    assert "mapping.message.fields.to: SMS_Message__c has no relationship Account__r (in Account__r.Phone)" in problems
    assert any(p.startswith("mapping.person.opt_out: Contact.No_Sms__c does not exist") for p in problems)
    assert any(p.startswith("mapping.person.opt_out: Lead.No_Sms__c does not exist") for p in problems)
