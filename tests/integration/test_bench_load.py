"""The benchmark's load generator: same headers as smsrelay, and a settled emulator between runs."""

from __future__ import annotations

import time

from bench.load import CLIENT_HEADERS, Call, capacity, settle
from smsrelay.emulators.base import Emulator, EmuRequest, EmuResponse, json_response, route


class Later(Emulator):
    name = "later"

    @route("POST", r"/send")
    def send(self, req: EmuRequest) -> EmuResponse:
        self.after(0.3, lambda: None)
        return json_response({"ok": True})


def test_capacity_sends_smsrelays_headers_and_the_calls_own(start_emulator):
    emu = start_emulator(Later)
    calls = [Call("POST", emu.url + "/send", b"{}", {"Accept": "application/json", "X-Api-Key": "k"})] * 5
    assert capacity(calls, concurrency=2) > 0
    got = emu.requests[-1]
    assert got.header("User-Agent") == CLIENT_HEADERS["User-Agent"]
    assert got.header("Accept") == "application/json" and got.header("X-Api-Key") == "k"


def test_settle_waits_for_the_timed_events_to_run(start_emulator):
    emu = start_emulator(Later)
    capacity([Call("POST", emu.url + "/send", b"{}")] * 3, concurrency=1)
    assert len(emu._timers) == 3
    started = time.monotonic()
    settle(emu.url)
    assert not emu._timers and time.monotonic() - started < 5
