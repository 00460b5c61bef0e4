"""The Kaleyra emulator speaks the documented contract (https://developers.kaleyra.io/docs/) over raw HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from smsrelay.emulators.kaleyra import KaleyraEmulator
from tests.fixtures.kaleyra import KALEYRA_SID, HookSink

KEY = {"api-key": "test-key"}


def send(emu: KaleyraEmulator, data: dict[str, Any], path: str = "messages", **kw: Any) -> requests.Response:
    headers = kw.pop("headers", KEY)
    return requests.post(f"{emu.url}/v1/{KALEYRA_SID}/{path}", data=data, headers=headers, timeout=10, **kw)


def test_the_success_response_has_the_seed_shape(kaleyra_emulator: KaleyraEmulator) -> None:
    resp = send(kaleyra_emulator, {"to": "+919876512345,919876512346", "sender": "KLRHXA", "body": "Hi", "ref": "c1"})
    assert resp.status_code == 202
    data = resp.json()
    assert set(data) >= {"id", "sender", "type", "body", "createdDateTime", "totalCount", "data", "dlrurl", "error"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00", data["createdDateTime"])
    assert data["totalCount"] == 2 and data["type"] == "DEFAULT" and data["error"] == {} and data["dlrurl"] is None
    assert data["data"] == [
        {"message_id": f"{data['id']}:1", "recipient": "919876512345"},
        {"message_id": f"{data['id']}:2", "recipient": "919876512346"},
    ]
    status = requests.get(
        f"{kaleyra_emulator.url}/v1/{KALEYRA_SID}/messages/status",
        params={"message_ids": f"{data['id']}:1"},
        headers=KEY,
        timeout=10,
    ).json()
    assert status == {
        "data": [{"campaign_id": f"{data['id']}:1", "status": "Sent", "status_details": "SUBMITTED"}],
        "error": {},
    }


def test_a_json_body_is_accepted_too(kaleyra_emulator: KaleyraEmulator) -> None:
    resp = requests.post(
        f"{kaleyra_emulator.url}/v1/{KALEYRA_SID}/messages",
        json={"to": "+919876512345", "body": "Hi"},
        headers=KEY,
        timeout=10,
    )
    assert resp.status_code == 202 and resp.json()["totalCount"] == 1


@pytest.mark.parametrize(
    ("data", "path", "field"),
    [
        ({"to": "12ab", "body": "Hi"}, "messages", "to"),
        ({"body": "Hi"}, "messages", "to"),
        ({"to": "+919876512345"}, "messages", "body"),
        ({"to": "+919876512345", "body": "Hi", "type": "PROMO"}, "messages", "type"),
        ({"to": "+919876512345", "body": "Hi", "ref": "r" * 51}, "messages", "ref"),
        ({"to": "+919876512345", "body": "Hi", "callback": '{"url": "http://x/h"}'}, "sms", "callback"),
        ({"to": "+919876512345", "body": "Hi", "time": "2030-01-01T00:00:00+00:00"}, "messages", "time"),
        ({"to": "+919876512345", "body": "Hi", "callback_profile_id": "nope"}, "messages", "callback_profile_id"),
    ],
)
def test_field_errors_are_keyed_by_field(
    kaleyra_emulator: KaleyraEmulator, data: dict[str, str], path: str, field: str
) -> None:
    resp = send(kaleyra_emulator, data, path)
    assert resp.status_code == 400
    assert list(resp.json()["error"]) == [field]
    assert kaleyra_emulator.messages == {}


def test_an_over_long_body_gets_the_seed_e401(kaleyra_emulator: KaleyraEmulator) -> None:
    resp = send(kaleyra_emulator, {"to": "+919876512345", "body": "x" * 4001})
    assert resp.status_code == 400
    msg = "SMS length is exceeding 4000 characters."
    assert resp.json() == {"code": "E401", "message": msg, "error": {"body": msg}}


def test_a_wrong_key_or_sid_is_401(kaleyra_emulator: KaleyraEmulator) -> None:
    assert send(kaleyra_emulator, {"to": "+919876512345", "body": "Hi"}, headers={"api-key": "x"}).status_code == 401
    other = requests.post(
        f"{kaleyra_emulator.url}/v1/HXOTHER/messages", data={"to": "1", "body": "x"}, headers=KEY, timeout=10
    )
    assert other.status_code == 401 and "code" in other.json()


def test_the_control_api_configures_inbound_and_injects_a_reply(
    kaleyra_emulator: KaleyraEmulator, hook_sink: HookSink
) -> None:
    ctl = kaleyra_emulator.url + "/_emulator/"
    spec = {"url": hook_sink.url + "/hook", "headers": {"X-Smsrelay-Token": "t"}}
    assert requests.post(ctl + "inbound", json=spec, timeout=10).status_code == 200
    sent = requests.post(ctl + "reply", json={"from": "+919876512345", "text": "YES"}, timeout=10).json()
    assert sent["source"] == "919876512345" and sent["message"] == "YES"
    assert requests.post(ctl + "reply", json={"text": "no sender"}, timeout=10).status_code == 400
    import time

    deadline = time.monotonic() + 10
    while not hook_sink.received() and time.monotonic() < deadline:
        time.sleep(0.02)
    (hook,) = hook_sink.received()
    assert hook.header("X-Smsrelay-Token") == "t" and hook.json()["id"] == sent["id"]
