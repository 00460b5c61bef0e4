"""A rate-limit turn counts from when the request leaves its connection, not from when it was taken."""

from __future__ import annotations

import threading

import pytest

from smsrelay import ManualClock, RateLimited
from smsrelay.departure import _HTTPConnection, departing
from smsrelay.emulators.base import Emulator, RateLimit
from smsrelay.transport import RetryPolicy, Transport, TurnMissed, WindowLimiter


def test_a_late_departure_moves_its_turn():
    clock = ManualClock()
    limiter = WindowLimiter(1, 1.0, clock=clock, headroom=0)
    start = clock.now()
    limiter.acquire()
    clock.advance(0.3)  # the handshake of a cold connection
    limiter.departed()
    limiter.acquire()
    # The provider counted the first request at 0.3 s, so the second may arrive at 1.3 s, not 1.0 s.
    assert (clock.now() - start).total_seconds() == 1.3


def test_a_turn_moves_once_and_only_its_own_thread_moves_it():
    clock = ManualClock()
    limiter = WindowLimiter(2, 1.0, clock=clock, headroom=0)
    limiter.acquire()
    other = threading.Thread(target=limiter.departed)  # took no turn: nothing to move
    other.start()
    other.join()
    clock.advance(0.5)
    limiter.departed()
    clock.advance(0.2)
    limiter.departed()  # already counted from 0.5
    limiter.acquire()
    start = clock.now()
    limiter.acquire()
    assert (clock.now() - start).total_seconds() == 0.8  # the window frees at 1.5 s, a second after the first turn


def test_the_connection_is_open_when_the_request_departs():
    seen: list[bool] = []
    with Emulator() as emu:
        host, port = emu.url.removeprefix("http://").split(":")
        conn = _HTTPConnection(host, int(port.rstrip("/")))
        assert conn.sock is None
        with departing(lambda: seen.append(conn.sock is not None)):
            conn.request("GET", "/_emulator/state")
        assert conn.getresponse().status == 200
        conn.close()
    assert seen == [True]


class _Turns:
    """A limiter that records what the transport tells it."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def acquire(self) -> float:
        self.events.append("turn")
        return 0.0

    def eta(self, calls: int) -> float:
        return 0.0

    def departed(self) -> None:
        self.events.append("left")

    def book(self, calls: int) -> None:
        self.events.append(f"book {calls}")


def test_each_attempt_departs_once_even_after_a_429():
    turns = _Turns()
    with Emulator() as emu:
        emu.set_rate_limit(RateLimit(1, 3600))
        transport = Transport(emu.url, provider="x", limiter=turns, clock=ManualClock())
        transport.request("GET", "/anything", ok=lambda r: r.status_code == 404)
        with pytest.raises(RateLimited):  # 429 on every attempt: the emulator's hour is spent
            transport.request("GET", "/anything", ok=lambda r: r.status_code == 404)
        transport.close()
    attempts = turns.events.count("turn")
    assert attempts >= 2 and turns.events == ["turn", "left"] * attempts


def test_a_turn_taken_ahead_is_the_next_requests_and_only_its():
    turns = _Turns()
    with Emulator() as emu:
        transport = Transport(emu.url, provider="x", limiter=turns, clock=ManualClock())
        transport.take_turn()
        transport.take_turn()  # already held: not a second turn
        for _ in range(2):
            transport.request("GET", "/anything", ok=lambda r: r.status_code == 404)
        transport.close()
    assert turns.events == ["turn", "left", "turn", "left"]


class _MissesOnce(_Turns):
    """A limiter whose first departure comes too long after its turn."""

    def departed(self) -> None:
        super().departed()
        if self.events.count("left") == 1:
            raise TurnMissed("left 0.3 s after its turn")


def test_a_request_that_missed_its_turn_takes_a_new_one_and_is_sent_once():
    turns = _MissesOnce()
    with Emulator() as emu:
        transport = Transport(emu.url, provider="x", limiter=turns, retry=RetryPolicy(attempts=1))
        # One attempt allowed, and still sent: the missed turn wrote nothing, so it was no attempt.
        assert transport.request("GET", "/anything", ok=lambda r: r.status_code == 404).status_code == 404
        transport.close()
        assert len(emu.received("GET", "/anything")) == 1
    assert turns.events == ["turn", "left", "turn", "left"] and transport.requests_made == 1
