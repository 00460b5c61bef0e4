"""The org emulator driven by unmodified simple-salesforce 1.12.10 over loopback HTTPS."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import jwt
import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

MSG = "SMS_Message__c"


def _contact(org, **kw):
    data = {"FirstName": "Ann", "LastName": "Smith", "MobilePhone": "+61400000001", **kw}
    return org.insert("Contact", [data])[0]


# -- authentication ---------------------------------------------------------------------------


def test_access_token_session_queries_and_fills_api_usage(sf, sf_org):
    result = sf.query("SELECT Id, Username FROM User")
    assert result["totalSize"] == 1
    assert result["records"][0]["Username"] == sf_org.username
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 15000


def test_jwt_bearer_login_through_simple_salesforce(sf_connect, sf_org):
    sf = sf_connect("jwt")
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    token_calls = sf_org.received("POST", r"/services/oauth2/token")
    assert len(token_calls) == 1
    assert token_calls[0].header("Host") == "login.salesforce.com"


def test_client_credentials_login_on_my_domain(sf_connect):
    sf = sf_connect("client_credentials")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_client_credentials_with_a_wrong_secret_is_refused(sf_org, sf_http):
    resp = sf_http.post(
        f"https://{sf_org.my_domain}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(sf_org.consumer_key, "wrong"),
    )
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_client_credentials_is_refused_on_login_salesforce_com(sf_org, sf_http):
    resp = sf_http.post(
        "https://login.salesforce.com/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(sf_org.consumer_key, sf_org.consumer_secret),
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"


def _assertion(key_pem, **claims):
    base = {
        "iss": "smsrelay-emulator-consumer-key",
        "sub": "integration@smsrelay.example",
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 120,
    }
    return jwt.encode({**base, **claims}, key_pem, algorithm="RS256")


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid"),
        ({"exp": int(time.time()) - 10}, "invalid_grant", "expired authorization code"),
        ({"sub": "nobody@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_jwt_claims_are_checked(sf_org, sf_http, sf_jwt, claims, error, description):
    resp = sf_http.post(
        sf_org.url + "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(
            sf_jwt.private_key_pem, **claims)},
    )  # fmt: skip
    assert resp.status_code == 400
    assert resp.json() == {"error": error, "error_description": description}


def test_jwt_signed_by_another_key_is_refused(sf_org, sf_http, tmp_path):
    from smsrelay_salesforce.testing import make_jwt_credentials

    other = make_jwt_credentials(tmp_path)
    resp = sf_http.post(
        sf_org.url + "/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
              "assertion": _assertion(other.private_key_pem)},
    )  # fmt: skip
    assert resp.status_code == 400
    assert resp.json()["error_description"] == "invalid assertion"


def test_simple_salesforce_reports_a_failed_jwt_login(sf_org, sf_http, sf_jwt):
    from simple_salesforce import Salesforce

    with pytest.raises(SalesforceAuthenticationFailed, match="client identifier invalid"):
        Salesforce(username=sf_org.username, consumer_key="not-the-app", privatekey_file=str(sf_jwt.private_key_path),
                   session=sf_http)  # fmt: skip


def test_a_request_without_a_valid_token_gets_invalid_session_id(sf_org, sf_http):
    resp = sf_http.get(sf_org.url + "/services/data/v59.0/query", params={"q": "SELECT Id FROM Contact"},
                       headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert resp.status_code == 401
    assert resp.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert sf_org.api_calls == 0


def test_expired_session_is_refreshed_by_simple_salesforce_jwt(sf_connect, sf_org):
    sf = sf_connect("jwt")
    sf.query("SELECT Id FROM Contact")
    assert sf_org.expire_sessions() == 1
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert len(sf_org.received("POST", r"/services/oauth2/token")) == 2


def test_sessions_expire_on_the_emulator_clock(sf, sf_org, clock):
    sf.query("SELECT Id FROM Contact")
    clock.advance(7201)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")


# -- query -------------------------------------------------------------------------------------


def test_query_all_iter_pages_at_2000_rows(sf, sf_org):
    sf_org.insert("Contact", [{"LastName": f"L{i:05d}", "MobilePhone": f"+614{i:08d}"} for i in range(4500)])
    names = [r["LastName"] for r in sf.query_all_iter("SELECT Id, LastName FROM Contact ORDER BY LastName DESC")]
    assert len(names) == 4500
    assert names[0] == "L04499" and names[-1] == "L00000"
    assert len(sf_org.received("GET", r".*/query/01g\w+-\d+")) == 2
    first = sf.query("SELECT Id FROM Contact")
    assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")


def test_query_batch_size_header(sf, sf_org):
    sf_org.insert("Contact", [{"LastName": f"L{i}"} for i in range(450)])
    page = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"})
    assert len(page["records"]) == 200
    assert len(list(sf.query_all_iter("SELECT Id FROM Contact"))) == 450


def test_relationship_fields_and_nulls(sf, sf_org):
    cid = _contact(sf_org)
    sf_org.insert(MSG, [{"Contact__c": cid, "To__c": "+61400000001"}, {"To__c": "+61400000002"}])
    rows = sf.query(f"SELECT To__c, Contact__r.FirstName, Contact__r.Owner.Username FROM {MSG} ORDER BY To__c")
    first, second = rows["records"]
    assert first["Contact__r"]["FirstName"] == "Ann"
    assert first["Contact__r"]["Owner"]["Username"] == sf_org.username
    assert first["Contact__r"]["attributes"]["type"] == "Contact"
    assert second["Contact__r"] is None


def test_default_bridge_filter_with_a_datetime_literal(sf, sf_org, clock):
    now = clock.now()
    sf_org.insert(MSG, [
        {"To__c": "+61400000001", "Status__c": "Queued"},
        {"To__c": "+61400000002", "Status__c": "Queued", "Send_At__c": (now - timedelta(minutes=1)).isoformat()},
        {"To__c": "+61400000003", "Status__c": "Queued", "Send_At__c": (now + timedelta(hours=1)).isoformat()},
        {"To__c": "+61400000004", "Status__c": "Sent"},
    ])  # fmt: skip
    literal = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    q = f"SELECT To__c FROM {MSG} WHERE Status__c = 'Queued' AND (Send_At__c = null OR Send_At__c <= {literal})"
    assert sorted(r["To__c"] for r in sf.query_all(q)["records"]) == ["+61400000001", "+61400000002"]


def test_datetimes_come_back_in_salesforce_format(sf, sf_org, clock):
    mid = sf_org.insert(MSG, [{"To__c": "+61400000001", "Send_At__c": "2026-03-01T10:00:00+02:00"}])[0]
    rec = sf.SMS_Message__c.get(mid)
    assert rec["Send_At__c"] == "2026-03-01T08:00:00.000+0000"
    assert rec["CreatedDate"] == clock.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert len(rec["Id"]) == 18 and rec["Id"].startswith(sf_org.schema.object(MSG).key_prefix)


def test_count_query(sf, sf_org):
    sf_org.insert("Lead", [{"LastName": f"L{i}", "Company": "Acme"} for i in range(7)])
    assert sf.query("SELECT COUNT() FROM Lead WHERE LastName IN ('L1', 'L2', 'nobody')")["totalSize"] == 2


@pytest.mark.parametrize(
    ("q", "code"),
    [
        ("SELECT Id FROM Contact WHERE Send_At__c <= NOW", "MALFORMED_QUERY"),
        ("SELECT Name, COUNT(Id) FROM Contact GROUP BY Name", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE LastName = 'x' LIMT 5", "MALFORMED_QUERY"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        (f"SELECT Id FROM {MSG} WHERE Send_At__c > '2026-01-01'", "MALFORMED_QUERY"),
    ],
)
def test_unsupported_or_invalid_queries_are_refused(sf, q, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(q)
    body = info.value.content
    assert body[0]["errorCode"] == code
    assert "ERROR at Row:1:Column:" in body[0]["message"]


# -- describe, sObject rows ----------------------------------------------------------------------


def test_describe_reflects_the_shipped_metadata(sf):
    d = sf.SMS_Message__c.describe()
    fields = {f["name"]: f for f in d["fields"]}
    assert fields["Send_Key__c"]["externalId"] and fields["Send_Key__c"]["unique"]
    assert fields["Send_Key__c"]["idLookup"]
    assert fields["Status__c"]["type"] == "picklist"
    assert "Queued" in [v["value"] for v in fields["Status__c"]["picklistValues"]]
    assert fields["Contact__c"]["referenceTo"] == ["Contact"]
    assert fields["Contact__c"]["relationshipName"] == "Contact__r"
    assert fields["Send_At__c"]["type"] == "datetime"
    assert fields["Link_Hits__c"]["calculated"] and not fields["Link_Hits__c"]["updateable"]
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"SMS_Message__c", "SMS_Link_Hit__c", "SMS_Consent__c", "Contact", "Lead", "User"} <= names


def test_sobject_create_get_update_delete(sf, sf_org, clock):
    created = sf.Contact.create({"LastName": "Jones", "MobilePhone": "+61400000009"})
    assert created["success"] is True
    cid = created["id"]
    clock.advance(60)
    assert sf.Contact.update(cid, {"FirstName": "Bo"}) == 204
    rec = sf.Contact.get(cid)
    assert rec["Name"] == "Bo Jones"
    assert rec["LastModifiedDate"] > rec["CreatedDate"]
    assert sf.Contact.delete(cid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(cid)


def test_upsert_by_external_id_creates_then_updates(sf, sf_org):
    r1 = sf.SMS_Message__c.upsert("Provider_Message_Id__c/m-1", {"To__c": "+61400000001"}, raw_response=True)
    assert r1.status_code == 201 and r1.json()["created"] is True
    r2 = sf.SMS_Message__c.upsert("Provider_Message_Id__c/m-1", {"Delivery_Status__c": "Delivered"},
                                  raw_response=True)  # fmt: skip
    assert r2.status_code == 200 and r2.json()["created"] is False
    assert r2.json()["id"] == r1.json()["id"]
    rows = sf_org.records(MSG, "Provider_Message_Id__c = 'm-1'")
    assert len(rows) == 1 and rows[0]["Delivery_Status__c"] == "Delivered"
    assert sf.SMS_Message__c.get_by_custom_id("Provider_Message_Id__c", "m-1")["Id"] == r1.json()["id"]


def test_upsert_link_hit_with_parent_by_external_id_and_rollup(sf, sf_org):
    sf.SMS_Message__c.upsert("Provider_Message_Id__c/m-9", {"To__c": "+61400000001"})
    for _ in range(2):  # replaying the same event changes nothing
        sf.SMS_Link_Hit__c.upsert("Event_Id__c/ev-1", {"Message__r": {"Provider_Message_Id__c": "m-9"},
                                                       "Url__c": "https://x.example/a"})  # fmt: skip
    sf.SMS_Link_Hit__c.upsert("Event_Id__c/ev-2", {"Message__r": {"Provider_Message_Id__c": "m-9"}})
    row = sf.query(f"SELECT Link_Hits__c FROM {MSG} WHERE Provider_Message_Id__c = 'm-9'")["records"][0]
    assert row["Link_Hits__c"] == 2
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.SMS_Link_Hit__c.upsert("Event_Id__c/ev-3", {"Message__r": {"Provider_Message_Id__c": "missing"}})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Foreign key external ID: missing not found" in info.value.content[0]["message"]


@pytest.mark.parametrize(
    ("data", "code", "fields"),
    [
        ({"To__c": "x" * 41}, "STRING_TOO_LONG", ["To__c"]),
        ({"Status__c": "Bogus"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status__c"]),
        ({"Contact__c": "00Q5g0000000001AAA"}, "FIELD_INTEGRITY_EXCEPTION", ["Contact__c"]),
        ({"Contact__c": "0035g00000000zzAAA"}, "INVALID_CROSS_REFERENCE_KEY", ["Contact__c"]),
        ({"Link_Hits__c": 3}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Link_Hits__c"]),
        ({"CreatedDate": "2026-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CreatedDate"]),
    ],
)
def test_field_checks_use_salesforce_error_shapes(sf, data, code, fields):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.SMS_Message__c.create(data)
    (err,) = info.value.content
    assert err["errorCode"] == code
    assert err["fields"] == fields
    assert set(err) == {"message", "errorCode", "fields"}


def test_unknown_field_is_invalid_field(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.create({"LastName": "x", "Nope__c": 1})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Nope__c" in info.value.content[0]["message"]


def test_required_fields(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Lead.create({"FirstName": "x"})
    err = info.value.content[0]
    assert err["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sorted(err["fields"]) == ["Company", "LastName"]


def test_external_id_uniqueness(sf, sf_org):
    sf.SMS_Message__c.create({"Send_Key__c": "k-1"})
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.SMS_Message__c.create({"Send_Key__c": "k-1"})
    assert info.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    # The shipped External IDs are case-sensitive (<caseSensitive>true</caseSensitive>).
    sf.SMS_Message__c.create({"Send_Key__c": "K-1"})
    assert sf_org.count(MSG) == 2


# -- sObject Collections -----------------------------------------------------------------------------


def _recs(n, **kw):
    return [{"attributes": {"type": MSG}, "To__c": f"+614000{i:05d}", **kw} for i in range(n)]


def test_collections_create_update_and_partial_failure(sf, sf_org):
    recs = _recs(3)
    recs[1]["Status__c"] = "Bogus"
    res = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": recs})
    assert [r["success"] for r in res] == [True, False, True]
    assert res[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf_org.count(MSG) == 2
    upd = [{"attributes": {"type": MSG}, "Id": res[0]["id"], "Status__c": "Sending", "Send_Key__c": "k0"},
           {"attributes": {"type": MSG}, "Id": res[2]["id"], "Status__c": "Sending", "Send_Key__c": "k0"}]  # fmt: skip
    res2 = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": upd})
    assert [r["success"] for r in res2] == [True, False]
    assert res2[1]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert res2[1]["id"] == res[2]["id"]


def test_collections_all_or_none_rolls_back(sf, sf_org):
    sf_org.insert(MSG, [{"Send_Key__c": "keep", "Status__c": "Queued"}])
    recs = _recs(3)
    recs[2]["Send_Key__c"] = "keep"
    res = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": recs})
    assert [r["success"] for r in res] == [False, False, False]
    assert res[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert res[0]["id"] is None
    assert res[2]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert sf_org.count(MSG) == 1
    # The indexes were rolled back too: the keys are free again.
    sf.SMS_Message__c.create({"To__c": "+61400000000", "Send_Key__c": "fresh"})


def test_collections_upsert_by_external_id(sf, sf_org):
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": MSG}, "Provider_Message_Id__c": "p1", "Delivery_Status__c": "Delivered"},
        {"attributes": {"type": MSG}, "Provider_Message_Id__c": "p2", "Delivery_Status__c": "Sent"},
    ]}  # fmt: skip
    res = sf.restful(f"composite/sobjects/{MSG}/Provider_Message_Id__c", method="PATCH", json=body)
    assert [(r["success"], r["created"]) for r in res] == [(True, True), (True, True)]
    res = sf.restful(f"composite/sobjects/{MSG}/Provider_Message_Id__c", method="PATCH", json=body)
    assert [(r["success"], r["created"]) for r in res] == [(True, False), (True, False)]
    assert sf_org.count(MSG) == 2
    dup = {"allOrNone": False, "records": [body["records"][0], body["records"][0]]}
    res = sf.restful(f"composite/sobjects/{MSG}/Provider_Message_Id__c", method="PATCH", json=dup)
    assert {r["errors"][0]["statusCode"] for r in res} == {"DUPLICATE_EXTERNAL_ID"}


def test_collections_refuse_more_than_200_records(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="POST", json={"records": _recs(201)})
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collections_retrieve_and_delete(sf, sf_org):
    ids = sf_org.insert("Contact", [{"LastName": "A"}, {"LastName": "B"}])
    got = sf.restful("composite/sobjects/Contact", params={"ids": ",".join(ids), "fields": "LastName"})
    assert [g["LastName"] for g in got] == ["A", "B"]
    res = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert all(r["success"] for r in res)
    assert sf_org.count("Contact") == 0


# -- limits and counting ------------------------------------------------------------------------------


def test_limits_and_header_on_every_response(sf, sf_org, sf_http):
    sf.query("SELECT Id FROM Contact")
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 2}
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT nope FROM Contact")
    assert sf.api_usage["api-usage"].used == 3 or sf_org.api_calls == 3
    resp = sf_http.get(sf_org.url + "/services/data/v59.0/limits",
                       headers={"Authorization": "Bearer " + sf_org.issue_token()})  # fmt: skip
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=4/15000"
    assert sf_org.calls["query"] == 2 and sf_org.calls["limits"] == 2


def test_request_limit_exceeded_when_the_allocation_is_spent(sf, sf_org):
    sf_org.set_api_usage(99, limit=100)
    sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Contact")
    assert info.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


# -- Bulk API 2.0 -----------------------------------------------------------------------------------------


def test_bulk2_insert_update_upsert_and_results(sf, sf_org):
    rows = [{"To__c": f"+614{i:08d}", "Provider_Message_Id__c": f"b{i}"} for i in range(3000)]
    rows[5]["Status__c"] = "Bogus"
    (res,) = sf.bulk2.SMS_Message__c.insert(records=rows, wait=0.01)
    assert (res["numberRecordsProcessed"], res["numberRecordsFailed"]) == (3000, 1)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.SMS_Message__c.get_failed_records(res["job_id"]))))
    assert len(failed) == 1 and failed[0]["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert failed[0]["Provider_Message_Id__c"] == "b5"
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.SMS_Message__c.get_successful_records(res["job_id"]))))
    assert len(ok) == 2999 and ok[0]["sf__Created"] == "true"
    upd = [{"Id": r["sf__Id"], "Delivery_Status__c": "Delivered"} for r in ok[:10]]
    (res2,) = sf.bulk2.SMS_Message__c.update(records=upd, wait=0.01)
    assert res2["numberRecordsFailed"] == 0
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 10
    ups = [{"Provider_Message_Id__c": "b1", "Delivery_Status__c": "Failed"},
           {"Provider_Message_Id__c": "new-1", "Delivery_Status__c": "Sent"}]  # fmt: skip
    (res3,) = sf.bulk2.SMS_Message__c.upsert(records=ups, external_id_field="Provider_Message_Id__c", wait=0.01)
    assert res3["numberRecordsFailed"] == 0
    created = list(csv.DictReader(io.StringIO(sf.bulk2.SMS_Message__c.get_successful_records(res3["job_id"]))))
    assert [c["sf__Created"] for c in created] == ["false", "true"]
    assert sf_org.count(MSG) == 3000
    # A handful of job calls, not one per record.
    assert sf_org.calls["bulk_create"] == 3 and sf_org.calls["bulk_upload"] == 3


def test_bulk2_null_marker_and_relationship_columns(sf, sf_org, tmp_path):
    sf_org.insert(MSG, [{"Provider_Message_Id__c": "m1", "Error_Code__c": "E1"}])
    (res,) = sf.bulk2.SMS_Message__c.upsert(records=[{"Provider_Message_Id__c": "m1", "Error_Code__c": "#N/A"}],
                                            external_id_field="Provider_Message_Id__c", wait=0.01)  # fmt: skip
    assert res["numberRecordsFailed"] == 0
    assert sf_org.records(MSG)[0]["Error_Code__c"] is None
    csv_path = tmp_path / "hits.csv"
    csv_path.write_text("Event_Id__c,Message__r.Provider_Message_Id__c\nh1,m1\nh2,zzz\n")
    (res2,) = sf.bulk2.SMS_Link_Hit__c.upsert(csv_file=str(csv_path), external_id_field="Event_Id__c", wait=0.01)
    assert (res2["numberRecordsProcessed"], res2["numberRecordsFailed"]) == (2, 1)
    assert sf_org.count("SMS_Link_Hit__c") == 1


def test_bulk2_unknown_column_fails_the_job(sf, sf_org):
    from simple_salesforce.exceptions import SalesforceOperationError

    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        sf.bulk2.Contact.insert(records=[{"LastName": "x", "Nope__c": "1"}], wait=0.01)


def test_bulk2_job_takes_emulator_time_when_configured(sf_org_factory, sf_connect, clock):
    org = sf_org_factory(bulk_processing_seconds=30)
    sf = sf_connect(org=org)
    job = sf.bulk2.Contact._client.create_job("insert")
    sf.bulk2.Contact._client.upload_job_data(job["id"], "LastName\nA\nB\n")
    assert sf.bulk2.Contact._client.close_job(job["id"])["state"] == "UploadComplete"
    assert sf.bulk2.Contact._client.get_job(job["id"], False)["state"] == "InProgress"
    org.advance(30)
    info = sf.bulk2.Contact._client.get_job(job["id"], False)
    assert (info["state"], info["numberRecordsProcessed"]) == ("JobComplete", 2)


# -- faults -------------------------------------------------------------------------------------------------


def test_injected_request_errors(sf, sf_org):
    sf_org.inject_error("UNABLE_TO_LOCK_ROW", path=r".*/composite/sobjects")
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="POST", json={"records": _recs(1)})
    assert info.value.content == [{"message": "unable to obtain exclusive access to this record",
                                   "errorCode": "UNABLE_TO_LOCK_ROW"}]  # fmt: skip
    sf_org.inject_error("REQUEST_LIMIT_EXCEEDED")
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT Id FROM Contact")
    sf_org.inject_error("SERVER_UNAVAILABLE", times=2)
    for _ in range(2):
        with pytest.raises(Exception) as info:
            sf.query("SELECT Id FROM Contact")
        assert info.value.status == 503
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_per_record_lock_errors_inside_a_collection(sf, sf_org):
    sf_org.fail_records("UNABLE_TO_LOCK_ROW", sobject=MSG, times=1)
    res = sf.restful("composite/sobjects", method="POST", json={"records": _recs(3)})
    assert [r["success"] for r in res] == [False, True, True]
    assert res[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf_org.count(MSG) == 2


def test_slow_responses(sf, sf_org):
    sf_org.slow(0.3, path=r".*/query/?")
    t = time.monotonic()
    sf.query("SELECT Id FROM Contact")
    assert time.monotonic() - t >= 0.3


def test_control_api_seeds_and_reads_records(sf_org, sf_http):
    resp = sf_http.post(sf_org.url + "/_emulator/records/Contact", json=[{"LastName": "Z"}])
    assert resp.status_code == 201
    rows = sf_http.get(sf_org.url + "/_emulator/records/Contact", params={"where": "LastName = 'Z'"}).json()
    assert [r["LastName"] for r in rows] == ["Z"]
    state = sf_http.get(sf_org.url + "/_emulator/state").json()
    assert state["objects"]["Contact"] == 1
    token = sf_http.post(sf_org.url + "/_emulator/token").json()
    assert token["instance_url"] == sf_org.url


def test_https_is_verified_against_the_test_ca(sf_org):
    with pytest.raises(requests.exceptions.SSLError):
        s = requests.Session()
        s.trust_env = False
        s.get(sf_org.url + "/services/data/")


def test_an_id_in_an_insert_is_refused_not_ignored(sf, sf_org):
    cid = sf_org.insert("Contact", [{"LastName": "A"}])[0]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.create({"Id": cid, "LastName": "B"})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    res = sf.restful("composite/sobjects", method="POST",
                     json={"records": [{"attributes": {"type": "Contact"}, "Id": cid, "LastName": "C"}]})  # fmt: skip
    assert res[0]["errors"][0]["message"] == "cannot specify Id in an insert call"
    assert [r["LastName"] for r in sf_org.records("Contact")] == ["A"]


def test_per_record_faults_reach_bulk_results(sf, sf_org):
    sf_org.fail_records("UNABLE_TO_LOCK_ROW", sobject="Contact", times=2)
    (res,) = sf.bulk2.Contact.insert(records=[{"LastName": f"L{i}"} for i in range(5)], wait=0.01)
    assert (res["numberRecordsProcessed"], res["numberRecordsFailed"]) == (5, 2)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(res["job_id"]))))
    assert [f["sf__Error"].split(":")[0] for f in failed] == ["UNABLE_TO_LOCK_ROW"] * 2
    assert sf_org.count("Contact") == 3


def test_a_reset_after_the_write_loses_the_answer_but_not_the_write(sf, sf_org):
    sf_org.inject("reset_after", path=r".*/composite/sobjects")
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.restful("composite/sobjects", method="POST", json={"records": _recs(2)})
    assert sf_org.count(MSG) == 2  # the org committed; only the response was lost


def test_a_long_running_org_keeps_only_recent_requests(sf, sf_org):
    sf_org.max_recorded_requests = 10
    for _ in range(30):
        sf.query("SELECT COUNT() FROM Contact")
    assert 10 <= len(sf_org.received("GET")) <= 11
    assert sf_org.api_calls == 30  # the counter is not trimmed


def test_bulk_jobs_run_asynchronously_and_the_org_stays_responsive(sf, sf_org):
    client = sf.bulk2.Contact._client
    job = client.create_job("insert")
    client.upload_job_data(job["id"], "LastName\n" + "\n".join(f"L{i}" for i in range(3000)) + "\n")
    assert client.close_job(job["id"])["state"] == "UploadComplete"
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 1  # answered while the job runs
    deadline = time.monotonic() + 60
    while client.get_job(job["id"], False)["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sf_org.count("Contact") == 3000
