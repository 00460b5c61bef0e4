"""The control API every emulator shares, over loopback HTTP, as a shell user drives it.

Each emulator answers the same paths (``/_emulator/messages``, ``replies``, ``link-hits``,
``opt-outs``, ``clock/advance``, ``reset``) in its provider's own terms; a provider without
such an event (ME-SMS has no inbound messages) answers 501 saying so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from smsrelay import Client, ManualClock
from smsrelay.emulators.base import Emulator


@dataclass(frozen=True)
class Case:
    provider: str
    settings: dict[str, Any]
    phone: str
    delivered: str  # the emulator's own word for a delivered message
    opted_out: str  # its status for a send to a number that opted out ("" if sends still go)
    inbound: bool = True
    links: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


CASES = {
    "kudosity-v2": Case(
        "kudosity",
        {"api": "v2", "api_key": "test-key", "sender": "61481074185"},
        "+61491570156",
        "delivered",
        "",
        links=True,
    ),
    "kudosity-v1": Case(
        "kudosity",
        {"api": "v1", "api_key": "test-key", "api_secret": "test-secret", "sender": "61481074185"},
        "+61491570156",
        "delivered",
        "",
        links=True,
    ),
    "smskit": Case("smskit", {"api_key": "sk_test_key"}, "+254712345678", "Delivered", "Failed"),
    "mesms": Case(
        "mesms", {"api_key": "test-key", "sender": "Acme"}, "+66812342000", "success", "blocked", inbound=False
    ),
    "kaleyra": Case(
        "kaleyra",
        {"api_key": "test-key", "sid": "HXAP0000000000", "sender": "KLRHXA"},
        "+919812345678",
        "Delivered",
        "NotSent",
    ),
}


def control(emu: Emulator, method: str, call: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.request(method, f"{emu.url}/_emulator/{call}", json=body, timeout=10)


@pytest.mark.parametrize("name", list(CASES))
def test_one_control_api_on_every_emulator(
    name: str, start_emulator: Callable[..., Emulator], clock: ManualClock
) -> None:
    case = CASES[name]
    emu = start_emulator(name, clock=clock)
    with Client(case.provider, clock=clock, env={}, base_url=emu.url, **case.settings) as client:
        client.send(case.phone, "Approve deploy 42? Reply YES")

        listed = control(emu, "GET", "messages").json()
        assert [(m["to"], m["body"]) for m in listed] == [(case.phone, "Approve deploy 42? Reply YES")]
        assert listed[0]["status"] != case.delivered

        advanced = control(emu, "POST", "clock/advance", {"seconds": 30})
        assert advanced.status_code == 200
        assert control(emu, "GET", "messages").json()[0]["status"] == case.delivered

        reply = control(emu, "POST", "replies", {"from": case.phone, "text": "YES"})
        assert reply.status_code == (201 if case.inbound else 501), reply.text
        if not case.inbound:
            assert "has no inbound messages" in reply.json()["error"]
        elif client.capabilities.inbound_poll:
            replies = [e for e in client.events() if e.kind == "reply"]
            assert [(e.phone, e.text) for e in replies] == [(case.phone, "YES")]

        hit = control(emu, "POST", "link-hits", {"phone": case.phone, "url": "https://example.com/release/42"})
        assert hit.status_code == (201 if case.links else 501), hit.text
        if case.links:  # Kudosity docs (webhooks): hits are cumulative
            again = control(emu, "POST", "link-hits", {"phone": case.phone})
            assert (hit.json()["hits"], again.json()["hits"]) == (1, 2)

        assert control(emu, "POST", "opt-outs", {"phone": case.phone}).status_code == 201
        if case.opted_out:  # the provider refuses later sends to the number
            client.send(case.phone, "Deploy 43 is out")
            control(emu, "POST", "clock/advance", {"seconds": 30})
            assert control(emu, "GET", "messages").json()[-1]["status"] == case.opted_out

    assert control(emu, "POST", "reset").status_code == 200
    assert control(emu, "GET", "messages").json() == []


@pytest.mark.parametrize("name", ["kudosity-v2", "kaleyra"])
def test_bad_control_calls_say_what_is_wrong(name: str, start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(name, clock=ManualClock())
    no_message = control(emu, "POST", "link-hits" if name == "kudosity-v2" else "replies", {"phone": "+61491570156"})
    assert no_message.status_code == 400
    assert control(emu, "POST", "opt-outs", {"phone": "not a number"}).status_code == 400
    missing = control(emu, "POST", "replies", {"from": "+61491570156"})
    assert (missing.status_code, missing.json()["error"]) == (400, "bad control call: the field 'text' is missing")


def test_the_real_clock_cannot_be_advanced(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator("smskit")
    assert control(emu, "POST", "clock/advance", {"seconds": 5}).status_code == 409


def test_kaleyra_keeps_its_reply_call_and_pushes_the_shared_one(
    start_emulator: Callable[..., Emulator], hook_sink: Emulator
) -> None:
    emu = start_emulator("kaleyra", clock=ManualClock())
    control(emu, "POST", "inbound", {"url": hook_sink.url + "/hook"})
    old = control(emu, "POST", "reply", {"from": "+919812345678", "text": "YES"})
    new = control(emu, "POST", "replies", {"from": "+919812345678", "text": "NO"})
    assert (old.json()["message"], new.json()["message"]) == ("YES", "NO")
    pushed = [json.loads(p["body"])["message"] for p in control(emu, "GET", "pushes").json()]
    assert pushed == ["YES", "NO"]  # both went to the Receive Message URL


@pytest.mark.parametrize(
    ("name", "header"),
    [("kudosity-v2", "x-api-key"), ("smskit", "x-api-key"), ("mesms", "x-api-key"), ("kaleyra", "api-key")],
)
def test_any_key_accepts_a_newcomers_own_well_formed_key(
    name: str, header: str, start_emulator: Callable[..., Emulator]
) -> None:
    strict = start_emulator(name)
    relaxed = start_emulator(name, accept_any_key=True)
    path = {
        "kudosity-v2": "/v2/sms",
        "smskit": "/api/devices",
        "mesms": "/api/v2/senders",
        "kaleyra": "/v1/HXAP0000000000/messages",
    }[name]

    def status(emu: Emulator, key: str) -> int:
        return requests.get(emu.url + path, headers={header: key}, timeout=10).status_code

    assert status(strict, "my-own-key-0123") == 401
    assert status(relaxed, "my-own-key-0123") == 200
    assert status(relaxed, "short") == 401  # not well formed: under 8 characters


def test_any_key_on_kudosity_v1_takes_any_key_and_secret(start_emulator: Callable[..., Emulator]) -> None:
    strict = start_emulator("kudosity-v1")
    relaxed = start_emulator("kudosity-v1", accept_any_key=True)
    auth = ("my-own-key-0123", "my-own-secret")
    assert requests.get(strict.url + "/get-balance.json", auth=auth, timeout=10).status_code == 401
    assert requests.get(relaxed.url + "/get-balance.json", auth=auth, timeout=10).status_code == 200
    wrong = requests.get(relaxed.url + "/get-balance.json", auth=("test-key", "wrong-secret"), timeout=10)
    assert wrong.status_code == 401  # a documented key keeps its documented secret
