"""The emulator kit and the client's send safety, against a minimal emulator over loopback HTTP.

The minimal "mini" API: POST /send {to, body, ref} -> 201 {id}; GET /messages?ref=… ->
[{id, to, ref}]; GET /messages/{id}. Its adapter reconciles by ref, like Kudosity V2.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

import pytest
import requests

from smsrelay import AmbiguousSend, Client, ManualClock, Status
from smsrelay.config import ProviderSettings
from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route
from smsrelay.errors import TransportError
from smsrelay.model import Capabilities, PreparedSms, RecipientResult
from smsrelay.providers.base import BatchOutcome, Provider
from smsrelay.transport import RetryPolicy, Transport


class MiniEmulator(Emulator):
    name = "mini"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.messages: list[dict] = []
        self._ids = itertools.count(1)

    @route("POST", r"/send")
    def send(self, req: EmuRequest) -> EmuResponse:
        data = req.json()
        if not data.get("to"):
            return json_response({"error": "to is required"}, 400)
        msg = {"id": f"m{next(self._ids)}", "to": data["to"], "ref": data.get("ref"), "at": self.clock.now()}
        with self.lock:
            self.messages.append(msg)
        return json_response({"id": msg["id"]}, 201)

    @route("GET", r"/messages")
    def list(self, req: EmuRequest) -> EmuResponse:
        ref = req.params.get("ref")
        found = [
            {"id": m["id"], "to": m["to"], "ref": m["ref"]}
            for m in self.messages
            if m["ref"] == ref and self.visible(m["at"])
        ]
        return json_response(found)

    @route("GET", r"/messages/(?P<mid>[^/]+)")
    def get(self, req: EmuRequest, mid: str) -> EmuResponse:
        for m in self.messages:
            if m["id"] == mid and self.visible(m["at"]):
                return json_response({"id": mid, "to": m["to"]})
        return json_response({"error": "not found"}, 404)


class MiniProvider(Provider):
    name: ClassVar[str] = "mini"
    capabilities = Capabilities(bulk_max=1, concurrency=4, lookup_by_ref=True)
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: ProviderSettings, *, clock=None, lookup: bool = True) -> None:
        super().__init__(settings, clock=clock)
        if not lookup:
            self.capabilities = Capabilities(bulk_max=1, concurrency=4, lookup_by_ref=False)
        self.transport = Transport(
            settings.base_url or "",
            provider=self.name,
            timeout=(1.0, settings.timeout),
            retry=RetryPolicy(attempts=settings.retries),
            clock=self.clock,
        )

    def send(self, batch: Sequence[PreparedSms], *, dry_run: bool = False) -> BatchOutcome:
        (sms,) = batch
        resp = self.transport.request("POST", "/send", json={"to": sms.to, "body": sms.body, "ref": sms.key})
        mid = resp.json()["id"]
        return BatchOutcome(None, [RecipientResult(sms.to, Status.QUEUED, mid, sms.parts, key=sms.key)])

    def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
        out = {}
        for key in keys:
            for m in self.transport.request("GET", "/messages", params={"ref": key}).json():
                out[key] = RecipientResult(m["to"], Status.QUEUED, m["id"], key=key)
        return out


@pytest.fixture
def mini(start_emulator) -> MiniEmulator:
    return start_emulator(MiniEmulator, clock=ManualClock())


def client_for(emu: Emulator, *, lookup: bool = True, timeout: float = 5.0) -> Client:
    settings = ProviderSettings("mini", base_url=emu.url, timeout=timeout, retries=4)
    return Client(MiniProvider(settings, clock=ManualClock(), lookup=lookup))


def test_reset_after_accept_is_reconciled_without_a_second_send(mini):
    mini.inject("reset_after", method="POST", path="/send")
    result = client_for(mini).send("+61491570156", "Hi")
    assert result.all_accepted
    assert len(mini.messages) == 1
    assert result.results[0].message_id == mini.messages[0]["id"]


def test_reset_before_accept_is_looked_up_then_sent_once(mini):
    mini.inject("reset_before", method="POST", path="/send")
    result = client_for(mini).send("+61491570156", "Hi")
    assert result.all_accepted
    assert len(mini.messages) == 1
    # It asked, with backoff, until the reconciliation window had passed, and only then resent.
    calls = [(r.method, r.path) for r in mini.received()]
    assert calls[0] == calls[-1] == ("POST", "/send")
    assert len(calls) > 3 and set(calls[1:-1]) == {("GET", "/messages")}


def test_5xx_on_send_is_reconciled(mini):
    mini.inject("status", status=503, method="POST", path="/send")
    result = client_for(mini).send(["+61491570156", "+61491570157"], "Hi")
    assert result.all_accepted
    assert sorted(m["to"] for m in mini.messages) == ["+61491570156", "+61491570157"]


def test_429_is_retried_after_retry_after_and_sends_once(mini):
    mini.inject("rate_limit", method="POST", path="/send", retry_after=7, times=2)
    client = client_for(mini)
    before = client.provider.clock.now()
    result = client.send("+61491570156", "Hi")
    assert result.all_accepted and len(mini.messages) == 1
    assert (client.provider.clock.now() - before).total_seconds() == 14  # honoured Retry-After twice


def test_ambiguous_without_lookup_raises_and_does_not_resend(mini):
    mini.inject("reset_after", method="POST", path="/send")
    with pytest.raises(AmbiguousSend) as info:
        client_for(mini, lookup=False).send(["+61491570156", "+61491570157"], "Hi")
    assert len(info.value.keys) == 1
    assert len(mini.messages) == 2  # the first was accepted, then the connection reset; never resent
    statuses = sorted(r.status.value for r in info.value.result.results)
    assert statuses == ["queued", "unknown"]


def test_slow_response_times_out_as_sent(mini):
    mini.inject("delay", seconds=0.5, method="GET", path="/messages/.*", times=10)
    transport = Transport(mini.url, provider="mini", timeout=(1.0, 0.1), retry=RetryPolicy(attempts=2))
    with pytest.raises(TransportError) as info:
        transport.request("GET", "/messages/m1")
    assert info.value.request_sent
    assert len(mini.received("GET", "/messages/m1")) == 2  # GET is idempotent: retried once


def test_connection_refused_is_never_ambiguous():
    transport = Transport("http://127.0.0.1:9", provider="mini", retry=RetryPolicy(attempts=1))
    with pytest.raises(TransportError) as info:
        transport.request("POST", "/send", json={})
    assert not info.value.request_sent


def test_read_after_write_lag(start_emulator):
    clock = ManualClock()
    emu = start_emulator(MiniEmulator, clock=clock, lag=3)
    mid = requests.post(emu.url + "/send", json={"to": "+61491570156", "ref": "r"}).json()["id"]
    assert requests.get(f"{emu.url}/messages/{mid}").status_code == 404
    clock.advance(3)
    assert requests.get(f"{emu.url}/messages/{mid}").status_code == 200


def test_control_api_faults_requests_and_clock(mini):
    assert requests.post(mini.url + "/_emulator/faults", json={"kind": "status", "status": 502}).status_code == 201
    assert requests.post(mini.url + "/send", json={"to": "x"}).status_code == 502
    assert requests.post(mini.url + "/send", json={"to": "x"}).status_code == 201
    seen = requests.get(mini.url + "/_emulator/requests").json()
    assert [r["path"] for r in seen] == ["/send", "/send"]
    assert requests.post(mini.url + "/_emulator/faults", json={"kind": "nope"}).status_code == 400
    t = requests.post(mini.url + "/_emulator/clock/advance", json={"seconds": 60}).json()["now"]
    assert t.startswith("2026-01-01T00:01:00")
    assert requests.get(mini.url + "/nowhere").status_code == 404


def test_timers_run_when_the_clock_advances(mini):
    fired = []
    mini.after(10, lambda: fired.append("dlr"))
    mini.advance(9)
    assert fired == []
    mini.advance(1)
    assert fired == ["dlr"]


def test_push_is_retried_until_2xx(start_emulator):
    receiver = start_emulator(MiniEmulator)
    receiver.inject("status", status=500, method="POST", path="/send", times=2)
    sender = start_emulator(MiniEmulator)
    push = sender.push(receiver.url + "/send", json_body={"to": "+61491570156"})
    for _ in range(200):
        if push.delivered:
            break
        import time

        time.sleep(0.02)  # the push thread runs in real time; bounded wait for it
    assert push.delivered and push.attempts == 3
    assert len(receiver.messages) == 1
