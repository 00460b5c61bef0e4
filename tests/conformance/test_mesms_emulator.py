"""The ME-SMS emulator speaks the documented contract (https://me-sms.com/en/api-docs) over raw HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from smsrelay.emulators.mesms import MeSmsEmulator

KEY = {"x-api-key": "test-key"}


def post(emu: MeSmsEmulator, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        emu.url + "/api/v2/sms/send", json=body, headers=KEY if headers is None else headers, timeout=10
    )


def ok_body(**kw: Any) -> dict[str, Any]:
    return {"sender": "Acme", "content": "Hi", "msisdns": ["66812345678"], **kw}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (ok_body(), {}, 401, "UNAUTHORIZED"),
        (ok_body(), {"x-api-key": "read-only-key"}, 403, "FORBIDDEN"),
        ({"sender": "Acme", "msisdns": ["66812345678"]}, None, 400, "INVALID_PARAMETER"),
        ({"sender": "Acme", "content": "Hi"}, None, 400, "INVALID_PARAMETER"),
        (ok_body(msisdns=["+66812345678"]), None, 400, "INVALID_MSISDN"),
        (ok_body(content="x" * 1001), None, 400, "CONTENT_TOO_LONG"),
        (ok_body(sender="NewBrand"), None, 400, "SENDER_NOT_APPROVED"),
        (ok_body(sender="TwelveChars!"), None, 400, "INVALID_PARAMETER"),
        (ok_body(scheduledTime="2026-06-01T10:00:00"), None, 400, "INVALID_PARAMETER"),
        ({"sender": "Acme", "templateId": 99, "msisdns": ["66812345678"]}, None, 400, "TEMPLATE_NOT_FOUND"),
    ],
)
def test_errors_are_json_with_error_and_code(
    mesms_emulator: MeSmsEmulator, body: Any, headers: dict[str, str] | None, status: int, code: str
) -> None:
    resp = post(mesms_emulator, body, headers)
    assert resp.status_code == status
    data = resp.json()
    assert data["code"] == code and isinstance(data["error"], str) and data["error"]
    assert mesms_emulator.batches == {}


def test_send_answers_a_uuid_and_recipients_page_by_cursor(mesms_emulator: MeSmsEmulator) -> None:
    numbers = [f"6681234{i:04d}" for i in range(5)] + ["6612"]  # the last is outside Thai ranges
    resp = post(mesms_emulator, ok_body(msisdns=numbers))
    assert resp.status_code == 200  # ME-SMS docs, send: 200, not 202
    uuid = resp.json()["uuid"]
    url = f"{mesms_emulator.url}/api/v2/sms/{uuid}/recipients"
    first = requests.get(url, params={"after": 0, "limit": 4}, headers=KEY, timeout=10).json()
    assert [r["msisdn"] for r in first["data"]] == numbers[:4]
    assert first["hasMore"] is True and first["nextCursor"] == "4" and "total" not in first
    assert {s["status"]: s["count"] for s in first["summary"]} == {"pending": 5, "invalid": 1}
    rest = requests.get(url, params={"after": first["nextCursor"], "limit": 4}, headers=KEY, timeout=10).json()
    assert [r["status"] for r in rest["data"]] == ["pending", "invalid"] and rest["hasMore"] is False
    paged = requests.get(url, params={"page": 1, "limit": 10}, headers=KEY, timeout=10).json()
    assert paged["total"] == 6 and "nextCursor" not in paged
    invalid = requests.get(url, params={"after": 0, "status": "invalid"}, headers=KEY, timeout=10).json()
    assert [r["msisdn"] for r in invalid["data"]] == ["6612"]
    bad = requests.get(url, params={"after": 0, "status": "delivered"}, headers=KEY, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PARAMETER"


def test_dry_run_estimates_without_sending_or_charging(mesms_emulator: MeSmsEmulator) -> None:
    credits = mesms_emulator.credits
    resp = post(mesms_emulator, ok_body(content="สวัสดี" * 20, msisdns=["66812345678", "0812345679"], dryRun=True))
    data = resp.json()
    assert resp.status_code == 200 and data["dryRun"] is True and "uuid" not in data
    assert (data["recipients"], data["parts"], data["credits"]) == (2, 2, 4)  # 120 Thai chars: 2 UCS-2 parts
    assert mesms_emulator.batches == {} and mesms_emulator.credits == credits


def test_a_contact_group_sends_to_its_numbers(mesms_emulator: MeSmsEmulator) -> None:
    resp = post(mesms_emulator, {"sender": "Acme", "content": "Hi", "contactGroupId": 7})
    assert resp.status_code == 200 and resp.json()["recipients"] == 2


def test_the_control_api_adds_a_synthetic_batch(mesms_emulator: MeSmsEmulator) -> None:
    made = requests.post(mesms_emulator.url + "/_emulator/batches", json={"n": 5}, timeout=10)
    assert made.status_code == 201
    url = f"{mesms_emulator.url}/api/v2/sms/{made.json()['uuid']}/recipients"
    rows = requests.get(url, params={"after": 0}, headers=KEY, timeout=10).json()["data"]
    assert [r["msisdn"] for r in rows] == [f"6680000000{i}" for i in range(5)]
    assert requests.post(mesms_emulator.url + "/_emulator/batches", json={"n": 0}, timeout=10).status_code == 400
