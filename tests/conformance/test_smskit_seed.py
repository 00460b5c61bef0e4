"""The SMSKit emulator and adapter against the seed document's literal examples.

The payloads below are copied verbatim from SMSKit's API reference (https://smskit.cloud/docs/api).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import requests

from smsrelay import Reply, Status
from smsrelay.providers.smskit import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from smsrelay.webhooks import WebhookRequest
from tests.fixtures.smskit import SMSKIT_WEBHOOK_SECRET

SEED_STATUS = """{
  "jobId": "job_7H2K9M4P1Q6R3T8V5W0X",
  "status": "Delivered",
  "recipient": "+254712345678",
  "deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W",
  "simSlot": 0,
  "attempts": 1,
  "createdAt": "2026-06-23T10:00:00Z",
  "deliveredAt": "2026-06-23T10:00:11Z"
}"""

SEED_RECEIVED = """{
  "event": "sms:received",
  "eventId": "evt_5T8W1X4Y7Z0A3B6C9D2E",
  "from": "+254712345678",
  "to": "+254700000000",
  "content": "YES",
  "deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W",
  "simSlot": 0,
  "receivedAt": "2026-06-23T10:05:00Z"
}"""

SEED_DEVICES_FIRST = {
    "deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W",
    "name": "Pixel 6 — Nairobi",
    "status": "Online",
    "isEnabled": True,
    "batteryLevel": 87,
    "networkType": "LTE",
    "signalStrength": 4,
    "pendingJobCount": 0,
    "lastHeartbeatAt": "2026-06-23T10:00:05Z",
    "sims": [
        {"simSlot": 0, "carrierName": "Safaricom", "isEnabled": True, "pendingJobCount": 0},
        {"simSlot": 1, "carrierName": "Airtel", "isEnabled": False, "pendingJobCount": 0},
    ],
}


def test_seed_status_example_through_the_adapter(smskit_client, smskit_emulator):
    # The literal bytes are served over HTTP at the status endpoint of the example job.
    job = "job_7H2K9M4P1Q6R3T8V5W0X"
    smskit_emulator.inject("status", status=200, body=SEED_STATUS, path=f"/api/sms/{job}/status")
    report = smskit_client.status(job)[job]
    assert (report.status, report.raw_status, report.phone) == (Status.DELIVERED, "Delivered", "+254712345678")
    assert report.occurred_at == datetime(2026, 6, 23, 10, 0, 11, tzinfo=UTC)
    assert report.final and report.raw["deviceId"] == "dvc_3K7J2H5F8M1N4Q9R6V0W"


def test_seed_received_example_through_the_adapter(smskit_client, clock):
    body = SEED_RECEIVED.encode()
    stamp = str(int(clock.now().timestamp()))
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(SMSKIT_WEBHOOK_SECRET, stamp, body)}
    request = WebhookRequest("POST", "/hooks/smskit", headers=headers, body=body)
    smskit_client.provider.verify_webhook(request)
    [reply] = smskit_client.provider.parse_webhook(request)
    assert isinstance(reply, Reply)
    assert (reply.event_id, reply.phone, reply.to, reply.text) == (
        "evt_5T8W1X4Y7Z0A3B6C9D2E",
        "+254712345678",
        "+254700000000",
        "YES",
    )
    assert reply.occurred_at == datetime(2026, 6, 23, 10, 5, tzinfo=UTC)
    # Redelivered, it is the same event: receivers dedupe on eventId.
    assert smskit_client.provider.parse_webhook(request)[0].event_id == reply.event_id


def test_emulator_send_answers_as_the_seed(smskit_emulator):
    # seed: the curl example, byte for byte the same body.
    r = requests.post(
        smskit_emulator.url + "/api/sms/send",
        headers={"X-Api-Key": "sk_test_key", "Content-Type": "application/json"},
        data='{ "recipient": "+254712345678", "message": "Your code is 123456" }',
        timeout=10,
    )
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"jobId", "status"} and body["status"] == "Pending"
    assert body["jobId"].startswith("job_") and len(body["jobId"]) == 24 and body["jobId"][4:].isupper()
    assert r.headers["Location"] == f"/api/sms/{body['jobId']}/status"
    status = requests.get(smskit_emulator.url + r.headers["Location"], headers={"X-Api-Key": "sk_test_key"}, timeout=10)
    assert set(json.loads(SEED_STATUS)) - {"deliveredAt"} <= set(status.json())


def test_emulator_devices_is_the_seed_example(smskit_emulator):
    r = requests.get(smskit_emulator.url + "/api/devices", headers={"X-Api-Key": "sk_test_key"}, timeout=10)
    assert r.status_code == 200 and r.json()["devices"][0] == SEED_DEVICES_FIRST


def test_emulator_pushes_received_in_the_seed_shape(smskit_emulator):
    payload = smskit_emulator.inbound("+254712345678", "YES")
    assert set(payload) == set(json.loads(SEED_RECEIVED))
    assert payload["to"] == "+254700000000" and payload["eventId"].startswith("evt_")


def test_emulator_reads_a_number_without_plus_as_kenyan(smskit_emulator):
    headers = {"X-Api-Key": "sk_test_key"}
    r = requests.post(
        smskit_emulator.url + "/api/sms/send",
        json={"recipient": "0712345678", "message": "hi"},
        headers=headers,
        timeout=10,
    )
    job = requests.get(smskit_emulator.url + f"/api/sms/{r.json()['jobId']}/status", headers=headers, timeout=10)
    assert job.json()["recipient"] == "+254712345678"


def test_emulator_errors_follow_the_seed_table(smskit_emulator):
    url, ok = smskit_emulator.url, {"X-Api-Key": "sk_test_key"}

    def send(body, headers=ok):
        return requests.post(url + "/api/sms/send", json=body, headers=headers, timeout=10)

    good = {"recipient": "+254712345678", "message": "hi"}
    # 400: bad number, empty message, message > 1600, priority out of 0-10
    for bad, field in [
        ({"recipient": "+12"}, "recipient"),
        ({"message": ""}, "message"),
        ({"message": "x" * 1601}, "message"),
        ({"priority": 11}, "priority"),
        ({"priority": -1}, "priority"),
    ]:
        r = send({**good, **bad})
        assert r.status_code == 400 and field in r.json()["errors"], bad
    assert send({**good, "message": "x" * 1600}).status_code == 202
    assert send(good, headers={}).status_code == 401
    assert send(good, headers={"X-Api-Key": "sk_test_suspended"}).status_code == 401
    assert send({**good, "devices": ["dvc_0THERACC0UNT0000000"]}).status_code == 403
    assert send({**good, "devices": [{"deviceId": "dvc_9Q2W4E6R8T0Y1U3I5O7P"}]}).status_code == 422
    assert requests.get(url + "/api/sms/job_UNKNOWN/status", headers=ok, timeout=10).status_code == 404


def test_emulator_rate_limit_is_per_hour_and_configurable(smskit_emulator, clock):
    smskit_emulator.rate_limit = 3
    get = lambda: requests.get(smskit_emulator.url + "/api/devices", headers={"X-Api-Key": "sk_test_key"}, timeout=10)  # noqa: E731
    assert [get().status_code for _ in range(3)] == [200, 200, 200]
    refused = get()
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3600"
    clock.advance(3599)
    assert get().status_code == 429
    clock.advance(1)
    assert get().status_code == 200
