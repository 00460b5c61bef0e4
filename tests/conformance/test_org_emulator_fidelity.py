"""Where Salesforce fails, the org emulator fails the same way (issue 15, part 7).

Each test cites the documented behaviour it holds the emulator to, as the Kudosity
emulators cite their OpenAPI files.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

MSG = "SMS_Message__c"


# REST API Developer Guide, "Status Codes and Error Responses", 400: "The request couldn't be
# understood, usually because the JSON or XML body contains an error." A value the JSON
# deserializer cannot read into the field's type is JSON_PARSER_ERROR for the whole request
# ("Cannot deserialize instance of double from VALUE_STRING value abc"), before any record
# is considered; measured against an org for a number given "abc" and a dateTime given
# "2026-12-05 10:00" or a bare "2026-12-05".
@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("Attempts__c", "abc", "double from VALUE_STRING value abc"),
        ("Attempts__c", True, "double from VALUE_TRUE"),
        ("Send_At__c", "2026-12-05 10:00", "datetime from VALUE_STRING value 2026-12-05 10:00"),
        ("Send_At__c", "2026-12-05", "datetime from VALUE_STRING value 2026-12-05"),
        ("Send_At__c", "tomorrow", "datetime from VALUE_STRING value tomorrow"),
    ],
)
def test_one_bad_value_sinks_the_whole_collections_call(sf, sf_org, field, value, kind) -> None:
    ids = sf_org.insert(MSG, [{"To__c": f"+6149157100{i}", "Status__c": "Queued"} for i in range(3)])
    records = [{"attributes": {"type": MSG}, "Id": i, "Status__c": "Sending"} for i in ids]
    records[1][field] = value
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    (err,) = info.value.content
    assert err["errorCode"] == "JSON_PARSER_ERROR" and kind in err["message"]
    assert {r["Status__c"] for r in sf_org.records(MSG)} == {"Queued"}  # not one record saved


def test_a_bad_value_in_a_single_record_call_is_a_parser_error_too(sf, sf_org) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.SMS_Message__c.create({"To__c": "+61491570100", "Attempts__c": "three"})
    assert info.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert sf_org.count(MSG) == 0


@pytest.mark.parametrize(
    "value", ["2026-12-05T10:00:00.000Z", "2026-12-05T10:00:00Z", "2026-12-05T20:00:00+10:00", "2026-12-05T10:00Z"]
)
def test_iso_datetimes_with_a_time_are_taken(sf, sf_org, value) -> None:
    # REST API Developer Guide, "Valid Date and DateTime Formats": yyyy-MM-ddTHH:mm:ss.SSS+/-HH:mm or Z.
    sf.SMS_Message__c.create({"To__c": "+61491570100", "Send_At__c": value})
    assert sf_org.records(MSG)[0]["Send_At__c"] == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


# REST API Developer Guide, "Limits": the URI of a REST request is at most 16,384 bytes; a SOQL
# query travels in the URL of a GET, so a long IN list is refused with HTTP 414.
def test_a_query_url_over_16384_bytes_is_414(sf_org, sf_http) -> None:
    token = sf_org.issue_token()
    ids = ",".join(f"'{i:040d}'" for i in range(400))  # ~17,000 bytes once URL-encoded
    soql = f"SELECT Id FROM {MSG} WHERE Provider_Message_Id__c IN ({ids})"
    resp = sf_http.get(
        f"{sf_org.url}/services/data/v62.0/query", params={"q": soql}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 414
    short = sf_http.get(
        f"{sf_org.url}/services/data/v62.0/query",
        params={"q": f"SELECT Id FROM {MSG} WHERE Provider_Message_Id__c IN ('1')"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert short.status_code == 200


# Duplicate External IDs within one upsert: Salesforce refuses every row that repeats a value
# (SOAP API "StatusCode": DUPLICATE_EXTERNAL_ID, "Duplicate external id specified"), in
# Collections and in a Bulk API 2.0 job alike; the last row does not win.
def test_duplicate_external_ids_in_one_bulk_upsert_all_fail(sf, sf_org) -> None:
    rows = [
        {"Send_Key__c": "k-1", "To__c": "+61491570101"},
        {"Send_Key__c": "k-2", "To__c": "+61491570102"},
        {"Send_Key__c": "k-1", "To__c": "+61491570199"},
    ]
    results = sf.bulk2.SMS_Message__c.upsert(records=rows, external_id_field="Send_Key__c", wait=0.01)
    assert (results[0]["numberRecordsProcessed"], results[0]["numberRecordsFailed"]) == (3, 2)
    assert [r["To__c"] for r in sf_org.records(MSG)] == ["+61491570102"]
    failed = sf.bulk2.SMS_Message__c.get_failed_records(results[0]["job_id"])
    assert failed.count("DUPLICATE_EXTERNAL_ID") == 2


def test_duplicate_external_ids_in_one_collections_upsert_all_fail(sf, sf_org) -> None:
    recs = [{"attributes": {"type": MSG}, "Send_Key__c": k, "To__c": "+61491570101"} for k in ("a", "b", "a")]
    body = {"allOrNone": False, "records": recs}
    res = sf.restful(f"composite/sobjects/{MSG}/Send_Key__c", method="PATCH", json=body)
    assert [r["success"] for r in res] == [False, True, False]
    assert {r["errors"][0]["statusCode"] for r in res if not r["success"]} == {"DUPLICATE_EXTERNAL_ID"}
    assert sf_org.count(MSG) == 1


# SOQL and SOSL Reference, "Formula and roll-up summary fields": both can be used in WHERE and
# ORDER BY (a roll-up with COUNT, SUM, MIN or MAX is filterable and sortable); the emulator
# filters and sorts on the value it shows.
def test_a_roll_up_field_is_filtered_and_sorted_on_the_value_it_shows(sf, sf_org) -> None:
    ids = sf_org.insert(MSG, [{"To__c": f"+6149157010{i}", "Provider_Message_Id__c": f"m-{i}"} for i in range(3)])
    hits = [("m-1", "e1"), ("m-2", "e2"), ("m-2", "e3")]
    for mid, ev in hits:
        sf.SMS_Link_Hit__c.upsert(f"Event_Id__c/{ev}", {"Message__r": {"Provider_Message_Id__c": mid}})
    rows = sf.query(f"SELECT Id, Link_Hits__c FROM {MSG} WHERE Link_Hits__c >= 1 ORDER BY Link_Hits__c DESC")
    assert [(r["Id"], r["Link_Hits__c"]) for r in rows["records"]] == [(ids[2], 2.0), (ids[1], 1.0)]
    none = sf.query(f"SELECT Id FROM {MSG} WHERE Link_Hits__c = 0")["records"]
    assert [r["Id"] for r in none] == [ids[0]]


def test_a_cross_object_formula_is_computed_filtered_and_sorted(sf_org_factory, sf_connect, tmp_path) -> None:
    import shutil

    from smsrelay_salesforce.schema import default_metadata_dir

    meta = tmp_path / "metadata"
    shutil.copytree(default_metadata_dir() or "", meta)
    fields = meta / "force-app/main/default/objects/SMS_Message__c/fields"
    (fields / "Contact_Mobile__c.field-meta.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <fullName>Contact_Mobile__c</fullName>\n    <formula>Contact__r.MobilePhone</formula>\n"
        "    <label>Contact Mobile</label>\n    <type>Text</type>\n</CustomField>\n"
    )
    org = sf_org_factory(metadata_dir=meta)
    sf = sf_connect(org=org)
    a, b = org.insert(
        "Contact", [{"LastName": "A", "MobilePhone": "+61491570002"}, {"LastName": "B", "MobilePhone": "+61491570001"}]
    )
    org.insert(MSG, [{"To__c": "x", "Contact__c": a}, {"To__c": "y", "Contact__c": b}, {"To__c": "z"}])
    rows = sf.query(
        f"SELECT To__c, Contact_Mobile__c FROM {MSG} WHERE Contact_Mobile__c != null ORDER BY Contact_Mobile__c"
    )
    assert [(r["To__c"], r["Contact_Mobile__c"]) for r in rows["records"]] == [
        ("y", "+61491570001"),
        ("x", "+61491570002"),
    ]


# SOQL and SOSL Reference, "ORDER BY": "Sorting on a picklist field is by the order of the values
# defined for the picklist" (Status__c: Queued, Sending, Sent, Failed, ...), not alphabetically.
def test_a_picklist_sorts_in_definition_order(sf, sf_org) -> None:
    sf_org.insert(MSG, [{"To__c": "x", "Status__c": s} for s in ("Failed", "Queued", "Sent", "Sending")])
    rows = sf.query(f"SELECT Status__c FROM {MSG} ORDER BY Status__c")["records"]
    assert [r["Status__c"] for r in rows] == ["Queued", "Sending", "Sent", "Failed"]
    desc = sf.query(f"SELECT Status__c FROM {MSG} ORDER BY Status__c DESC")["records"]
    assert [r["Status__c"] for r in desc] == ["Failed", "Sent", "Sending", "Queued"]


# REST API Developer Guide, "Query Options Header": "If the SOQL statement selects two or more
# custom fields of type long text, the batch size can't be more than 200 records."
def test_two_long_text_fields_page_at_200_rows(sf_org_factory, sf_connect, tmp_path) -> None:
    import shutil

    from smsrelay_salesforce.schema import default_metadata_dir

    meta = tmp_path / "metadata"
    shutil.copytree(default_metadata_dir() or "", meta)
    (meta / "force-app/main/default/objects/SMS_Message__c/fields/Notes__c.field-meta.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "    <fullName>Notes__c</fullName>\n    <label>Notes</label>\n    <length>32768</length>\n"
        "    <type>LongTextArea</type>\n    <visibleLines>3</visibleLines>\n</CustomField>\n"
    )
    org = sf_org_factory(metadata_dir=meta)
    sf = sf_connect(org=org)
    org.insert(MSG, [{"To__c": "x", "Body__c": "b", "Notes__c": "n"} for _ in range(450)])
    one = sf.query(f"SELECT Id, Body__c FROM {MSG}")
    assert len(one["records"]) == 450 and one["done"]
    two = sf.query(f"SELECT Id, Body__c, Notes__c FROM {MSG}")
    assert len(two["records"]) == 200 and not two["done"]
    assert len(list(sf.query_all_iter(f"SELECT Id, Body__c, Notes__c FROM {MSG}"))) == 450


# Salesforce Help, "OAuth 2.0 Web Server Flow for Web App Integration", token response: "id":
# the identity URL (https://login.salesforce.com/id/<org Id>/<user Id>, on the host that issued
# the token); "signature": Base64-encoded HMAC-SHA256 signature signed with the client secret,
# "containing the concatenated ID and issued_at value", so a client can verify it.
def test_the_token_response_has_the_identity_url_and_its_signature(sf_org, sf_http) -> None:
    import base64
    import hashlib
    import hmac

    resp = sf_http.post(
        f"https://{sf_org.my_domain}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(sf_org.consumer_key, sf_org.consumer_secret),
    )
    body = resp.json()
    assert resp.status_code == 200
    user = sf_org.records("User", f"Username = '{sf_org.username}'")[0]["Id"]
    assert body["id"] == f"https://{sf_org.my_domain}/id/{sf_org.org_id}/{user}"
    expected = hmac.new(
        sf_org.consumer_secret.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(body["signature"]) == expected


# Salesforce Help, "Custom Field Types", Number: a value with more decimal places than the field's
# scale is rounded, half away from zero: Attempts__c (Number(3, 0)) given 2.5 stores 3, not 2.
@pytest.mark.parametrize(("given", "stored"), [(2.5, 3.0), (3.5, 4.0), (2.4, 2.0), (-2.5, -3.0)])
def test_a_number_with_scale_0_rounds_half_up(sf, sf_org, given, stored) -> None:
    sf.SMS_Message__c.create({"To__c": "+61491570100", "Attempts__c": given})
    assert sf_org.records(MSG)[0]["Attempts__c"] == stored


# SOQL and SOSL Reference, "Comparison Operators": "String comparisons using the equals operator
# are case-sensitive for unique case-sensitive fields and case-insensitive for all other fields",
# the same alone or inside an OR (Provider_Message_Id__c is unique and case-sensitive; To__c is not).
def test_a_unique_case_sensitive_field_compares_case_sensitively_inside_an_or_too(sf, sf_org) -> None:
    sf_org.insert(MSG, [{"To__c": "ABC", "Provider_Message_Id__c": "Msg-1"}])

    def count(where: str) -> int:
        return int(sf.query(f"SELECT COUNT() FROM {MSG} WHERE {where}")["totalSize"])

    assert count("Provider_Message_Id__c = 'msg-1'") == 0
    assert count("Provider_Message_Id__c = 'msg-1' OR To__c = 'nothing'") == 0
    assert count("Provider_Message_Id__c IN ('msg-1', 'x') OR To__c = 'nothing'") == 0
    assert count("Provider_Message_Id__c = 'Msg-1' OR To__c = 'nothing'") == 1
    assert count("To__c = 'abc' OR Provider_Message_Id__c = 'x'") == 1  # not case-sensitive
