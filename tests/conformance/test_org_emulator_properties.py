"""Properties of the org emulator's writes over HTTPS: allOrNone is all or nothing, indexes stay consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MSG = "SMS_Message__c"

# A record is valid, or broken in one of the ways Salesforce refuses per record.
record = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["k1", "k2", "k3", "k4", "k5", None]),
        "status": st.sampled_from(["Queued", "Sent", "Bogus"]),
        "to": st.sampled_from(["+61400000001", "x" * 41]),
    }
)


def _body(rec):
    data = {"attributes": {"type": MSG}, "Status__c": rec["status"], "To__c": rec["to"]}
    if rec["key"]:
        data["Send_Key__c"] = rec["key"]
    return data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(st.booleans(), st.lists(record, min_size=1, max_size=6)), min_size=1, max_size=4))
def test_collections_create_is_all_or_nothing_and_keys_stay_unique(sf, sf_org, batches):
    sf_org.reset()
    sf.session_id = sf_org.issue_token()
    sf.headers["Authorization"] = "Bearer " + sf.session_id
    for all_or_none, recs in batches:
        before = sf_org.count(MSG)
        res = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": all_or_none, "records": [_body(r) for r in recs]})  # fmt: skip
        assert len(res) == len(recs)
        ok = sum(r["success"] for r in res)
        if all_or_none and ok != len(recs):
            assert ok == 0
            assert sf_org.count(MSG) == before
        else:
            assert sf_org.count(MSG) == before + ok
        for r in res:
            assert set(r) >= {"success", "errors"}
            if r["success"]:
                assert sf_org.get(MSG, r["id"]) is not None
            else:
                assert r["errors"] and all(set(e) == {"statusCode", "message", "fields"} for e in r["errors"])
    rows = sf_org.records(MSG)
    keys = [r["Send_Key__c"] for r in rows if r["Send_Key__c"]]
    assert len(keys) == len(set(keys))
    # The index agrees with the rows: each stored key is found by an indexed query, and only once.
    for k in keys:
        assert sf.query(f"SELECT COUNT() FROM {MSG} WHERE Send_Key__c = '{k}'")["totalSize"] == 1
    assert all(r["Status__c"] != "Bogus" and len(r["To__c"]) <= 40 for r in rows)
