"""Emulators that behave like the real API: each provider's documented rate limit, answered
with that provider's own 429, and a per-request latency with jitter, all on an injectable
clock, so that an hour of SMSKit's budget passes in milliseconds (issue 17, item 1)."""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from smsrelay import ScaledClock
from smsrelay.cli import main
from smsrelay.emulators.base import Emulator, EmuRequest, RateLimit, _SlidingWindow
from smsrelay.emulators.kaleyra import KaleyraEmulator
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator

V1_AUTH = {"Authorization": "Basic " + base64.b64encode(b"test-key:test-secret").decode()}
# One cheap authenticated read per provider: (path, headers).
READS: dict[type[Emulator], tuple[str, dict[str, str]]] = {
    KudosityV2Emulator: ("/v2/sms?limit=1", {"x-api-key": "test-key"}),
    KudosityV1Emulator: ("/get-balance.json", V1_AUTH),
    SmsKitEmulator: ("/api/devices", {"X-Api-Key": "sk_test_key"}),
    MeSmsEmulator: ("/api/v2/credits", {"X-Api-Key": "test-key"}),
    KaleyraEmulator: ("/v1/HXAP0000000000/messages", {"api-key": "test-key"}),
}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _reader(emu: Emulator, http: requests.Session) -> Callable[[], requests.Response]:
    path, headers = READS[type(emu)]
    return lambda: http.get(emu.url + path, headers=headers, timeout=10)


# -- the documented limits, on the manual clock ----------------------------------------------


def test_smskit_allows_100_requests_an_hour_then_429_with_retry_after(start_emulator, clock, http):
    """SMSKit docs, Errors & rate limits (https://smskit.cloud/docs/api) [SEED-ONLY, seed 001]:
    "The client API is limited per API client (currently 100 requests/hour). On 429, read
    Retry-After and back off." An hour on the manual clock takes no real time."""
    emu = start_emulator(SmsKitEmulator, clock=clock, rate_limit=True)
    get = _reader(emu, http)
    assert [get().status_code for _ in range(100)] == [200] * 100
    refused = get()
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3600"  # the whole hour: all 100 arrived at one instant
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["title"] == "Too Many Requests"
    clock.advance(3599)
    again = get()
    assert again.status_code == 429 and again.headers["Retry-After"] == "1"
    clock.advance(1)
    assert get().status_code == 200
    assert emu.stats()["requests"] == 103 and emu.stats()["rate_limited"] == 2


def test_smskit_counts_per_api_client_and_not_refused_keys(start_emulator, clock, http):
    """SMSKit seed: the limit is "per API client"; a missing or suspended key is a 401, and
    ASSUMPTION (marked in the emulator) it spends no budget."""
    emu = start_emulator(SmsKitEmulator, clock=clock, api_keys=("sk_a_key_0001", "sk_b_key_0002"))
    emu.rate_limit = 2
    url = emu.url + "/api/devices"
    codes = [http.get(url, headers={"X-Api-Key": "sk_a_key_0001"}, timeout=10).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert http.get(url, headers={"X-Api-Key": "sk_test_suspended"}, timeout=10).status_code == 401
    assert http.get(url, headers={"X-Api-Key": "sk_b_key_0002"}, timeout=10).status_code == 200


@pytest.mark.parametrize("cls", [KudosityV2Emulator, KudosityV1Emulator])
def test_kudosity_allows_15_calls_a_second_then_over_limit_without_retry_after(start_emulator, clock, http, cls):
    """Kudosity docs, API Overview: Rate limiting (reference/API Overview/rate-limiting.md):
    "we limit the number of API calls which can be made by each account to 15 calls per sec";
    over it, HTTP 429 with error code OVER_LIMIT. No Retry-After or rate-limit header is
    documented, so none is sent (research kudosity.md §3.9)."""
    emu = start_emulator(cls, clock=clock, rate_limit=True)
    get = _reader(emu, http)
    assert [get().status_code for _ in range(15)] == [200] * 15
    refused = get()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "OVER_LIMIT"
    assert not {h.lower() for h in refused.headers} & {"retry-after", "x-ratelimit-limit", "x-ratelimit-remaining"}
    if cls is KudosityV1Emulator:  # OAS1's error block carries the HTTP status as its `header`
        assert refused.json()["error"]["header"] == 429
    clock.advance(0.5)
    assert get().status_code == 429  # a sliding second: the 15 are still inside it
    clock.advance(0.5)
    assert get().status_code == 200


def test_kaleyra_allows_50000_requests_in_5_minutes(clock):
    """Kaleyra support article 3000110656 (CleverTap integration): Kaleyra throttles "up to
    50,000 requests for every 5 minutes". No Retry-After is documented. Driven through the
    emulator's dispatch (the HTTP server's entry point): 50,000 loopback requests take too long."""
    emu = KaleyraEmulator(clock=clock, rate_limit=True)
    path, headers = READS[KaleyraEmulator]

    def call() -> int:
        req = EmuRequest("GET", path, "", headers, b"", clock.now())
        return emu.dispatch(req).status

    assert all(call() == 200 for _ in range(50_000))
    refused = emu.dispatch(EmuRequest("GET", path, "", headers, b"", clock.now()))
    assert refused.status == 429 and "Retry-After" not in refused.headers
    assert b'"E429"' in refused.body
    clock.advance(300)
    assert call() == 200


def test_mesms_documents_no_limit_so_documented_enforces_none(start_emulator, clock, http):
    """ME-SMS docs (seed 002, error format; research providers.md §2.3): 429 "Rate limit
    exceeded" exists, but no number is published. rate_limit=True enforces nothing; a limit
    given by hand answers with ME-SMS's own error body and no Retry-After."""
    assert MeSmsEmulator.documented_rate_limit is None
    emu = start_emulator(MeSmsEmulator, clock=clock, rate_limit=True)
    get = _reader(emu, http)
    assert {get().status_code for _ in range(40)} == {200}
    emu.set_rate_limit(RateLimit(2, 60))
    assert [get().status_code for _ in range(2)] == [200, 200]
    refused = get()
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert refused.json() == {"error": "Rate limit exceeded", "code": "RATE_LIMITED"}


@pytest.mark.parametrize("cls", [KudosityV2Emulator, KudosityV1Emulator, MeSmsEmulator, KaleyraEmulator])
def test_by_default_no_limit_is_enforced(start_emulator, clock, http, cls):
    """Realism is opt-in (existing tests and loopback benchmarks stay as they were); SMSKit
    alone has always enforced its documented limit by default."""
    emu = start_emulator(cls, clock=clock)
    get = _reader(emu, http)
    assert {get().status_code for _ in range(30)} == {200}
    assert emu.rate_limit_in_force is None
    assert SmsKitEmulator(clock=clock).rate_limit_in_force == SmsKitEmulator.documented_rate_limit
    assert SmsKitEmulator(clock=clock, rate_limit=False).rate_limit_in_force is None


def test_control_calls_are_exempt_from_the_limit_and_the_latency(start_emulator, clock, http):
    """The /_emulator/ control API is the test harness, not the provider's API."""
    emu = start_emulator(KudosityV2Emulator, clock=clock, rate_limit=RateLimit(1, 3600), latency=5.0)
    before = clock.now()
    assert {http.get(emu.url + "/_emulator/state", timeout=10).status_code for _ in range(5)} == {200}
    assert clock.now() == before
    assert emu.stats()["requests"] == 0


def test_the_control_api_switches_the_limit_at_runtime(start_emulator, clock, http):
    """One emulator process serves a capacity run (no limit) and a realistic run (the documented
    limit): POST /_emulator/rate_limit. A limit set by hand keeps the provider's 429 (Kudosity:
    no Retry-After, see the Kudosity test above)."""
    emu = start_emulator(KudosityV2Emulator, clock=clock)
    control = emu.url + "/_emulator/rate_limit"
    assert http.post(control, json={"documented": True}, timeout=10).json() == {"limit": 15, "window": 1.0}
    assert http.post(control, json={"limit": 2, "window": 60}, timeout=10).json() == {"limit": 2, "window": 60.0}
    get = _reader(emu, http)
    codes = [get() for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429] and "Retry-After" not in codes[-1].headers
    assert http.post(control, json={"limit": None}, timeout=10).json() == {"limit": None, "window": None}
    assert get().status_code == 200
    mesms = start_emulator(MeSmsEmulator, clock=clock)
    refused = http.post(mesms.url + "/_emulator/rate_limit", json={"limit": 2}, timeout=10)
    assert refused.status_code == 400 and "window" in refused.json()["error"]


def test_rate_limit_values_are_checked():
    with pytest.raises(ValueError, match="at least 1 request"):
        RateLimit(0, 1.0)
    with pytest.raises(ValueError, match="positive number of seconds"):
        RateLimit(15, 0)
    with pytest.raises(TypeError, match="RateLimit, True, False or None"):
        KudosityV2Emulator(rate_limit=15)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        KudosityV2Emulator(latency=-0.1)


# -- latency and jitter ----------------------------------------------------------------------


def test_latency_advances_the_manual_clock_by_latency_plus_minus_jitter(start_emulator, clock, http):
    """Real APIs answer in about 100–300 ms (issue 17): each API response waits latency ± a
    uniform jitter on the emulator's clock, reproducibly for a seed."""
    emu = start_emulator(KudosityV2Emulator, clock=clock, latency=0.15, jitter=0.03, seed=7)
    get = _reader(emu, http)
    waits = []
    for _ in range(10):
        before = clock.now()
        assert get().status_code == 200
        waits.append((clock.now() - before).total_seconds())
    rng = random.Random(7)
    expected = [0.15 + rng.uniform(-0.03, 0.03) for _ in range(10)]
    assert waits == pytest.approx(expected, abs=1e-6)
    assert all(0.12 <= w <= 0.18 for w in waits) and len(set(waits)) > 1


def test_a_429_takes_the_latency_too(start_emulator, clock, http):
    """A refusal is a round trip like any other answer."""
    emu = start_emulator(KudosityV2Emulator, clock=clock, latency=0.2, rate_limit=RateLimit(1, 60))
    get = _reader(emu, http)
    assert get().status_code == 200
    before = clock.now()
    assert get().status_code == 429
    assert (clock.now() - before).total_seconds() == pytest.approx(0.2)


def test_latency_on_a_scaled_clock_is_real_time_divided_by_speed(start_emulator, http):
    emu = start_emulator(KudosityV2Emulator, clock=ScaledClock(20), latency=4.0)  # 4 s simulated = 0.2 s real
    get = _reader(emu, http)
    started = time.monotonic()
    assert get().status_code == 200
    assert 0.19 <= time.monotonic() - started < 5


# -- the scaled clock ------------------------------------------------------------------------


def test_scaled_clocks_with_one_epoch_agree_and_run_speed_times_faster():
    epoch = time.time() - 10
    a, b = ScaledClock(100, epoch=epoch), ScaledClock(100, epoch=epoch)
    assert abs((a.now() - b.now()).total_seconds()) < 1  # 10 ms of real time at 100×
    # Ten real seconds since the epoch are 1,000 simulated ones, counted from the epoch in UTC.
    assert a.now() - datetime.fromtimestamp(epoch, UTC) >= timedelta(seconds=1000)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    c = ScaledClock(3600, epoch=epoch, start=start)
    assert timedelta(hours=10) <= c.now() - start < timedelta(hours=11)
    real = time.monotonic()
    c.sleep(36)  # 36 simulated seconds: 10 ms
    assert 0.009 <= time.monotonic() - real < 1


def test_scaled_clock_refuses_nonsense():
    for speed in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive number"):
            ScaledClock(speed)
    with pytest.raises(ValueError, match="timezone"):
        ScaledClock(2, start=datetime(2026, 1, 1))


# -- stats -----------------------------------------------------------------------------------


def test_stats_count_api_requests_and_429s_and_reset_clears_them(start_emulator, clock, http):
    emu = start_emulator(SmsKitEmulator, clock=clock)
    emu.rate_limit = 2
    get = _reader(emu, http)
    assert emu.stats()["first_request_at"] is None
    started = clock.now()
    get()
    clock.advance(30)
    get()
    get()  # refused
    stats = http.get(emu.url + "/_emulator/stats", timeout=10).json()
    assert (stats["requests"], stats["rate_limited"]) == (3, 1)
    assert stats["first_request_at"] == started.isoformat()
    assert stats["last_request_at"] == (started + timedelta(seconds=30)).isoformat()
    assert stats["rate_limit"]["requests"] == 2 and stats["rate_limit"]["retry_after"] is True
    assert stats == emu.stats()
    assert http.post(emu.url + "/_emulator/reset", timeout=10).status_code == 200
    after = emu.stats()
    assert (after["requests"], after["rate_limited"], after["last_request_at"]) == (0, 0, None)
    assert get().status_code == 200  # the window was reset too


# -- the command line ------------------------------------------------------------------------


def test_emulate_flags_start_a_slow_rate_limited_emulator_on_a_shared_scaled_clock(http):
    """`smsrelay emulate` with every realism flag, as a benchmark starts it: the emulator in its
    own process agrees with this one on the time (same speed and epoch), waits the latency in
    real time ÷ speed, and answers Kudosity's 429 once the limit is spent."""
    epoch = time.time()
    cmd = [sys.executable, "-m", "smsrelay", "emulate", "kudosity-v2", "--latency", "2s", "--jitter", "500ms"]
    cmd += ["--rate-limit", "2/h", "--clock-speed", "10", "--clock-epoch", repr(epoch), "--seed", "3"]
    env = {k: v for k, v in os.environ.items() if k != "SMSRELAY_CONFIG"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on " in line, proc.stderr.read() if proc.stderr else line
        url = line.split(" listening on ")[1].split()[0]
        ours = ScaledClock(10, epoch=epoch)
        before = ours.now()
        started = time.monotonic()
        first = http.get(url + "/v2/sms?limit=1", headers={"x-api-key": "test-key"}, timeout=10)
        took = time.monotonic() - started
        codes = [http.get(url + "/v2/sms?limit=1", headers={"x-api-key": "test-key"}, timeout=10).status_code]
        codes.append(http.get(url + "/v2/sms?limit=1", headers={"x-api-key": "test-key"}, timeout=10).status_code)
        stats = http.get(url + "/_emulator/stats", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert first.status_code == 200 and codes == [200, 429]
    assert 0.15 <= took < 5  # 1.5–2.5 simulated seconds at 10×
    assert (stats["requests"], stats["rate_limited"]) == (3, 1)
    arrived = datetime.fromisoformat(stats["first_request_at"])
    assert before - timedelta(seconds=1) <= arrived <= before + timedelta(seconds=took * 10 + 1)
    assert (stats["latency"], stats["jitter"], stats["rate_limit"]["per"]) == (2.0, 0.5, 3600.0)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--latency", "fast"], "--latency"),
        (["--jitter=-30ms"], "--jitter"),
        (["--rate-limit", "15/fortnight"], "--rate-limit"),
        (["--rate-limit", "0/s"], "--rate-limit"),
        (["--clock-speed", "0"], "--clock-speed"),
        (["--clock-speed", "fast"], "--clock-speed"),
        (["--clock-epoch", "1765000000.0"], "--clock-epoch"),
        (["--clock-speed", "10", "--clock-epoch", "yesterday"], "--clock-epoch"),
        (["--seed", "lucky"], "--seed"),
        (["--clock-speed", "10", "--manual-clock"], "--clock-speed"),
    ],
)
def test_emulate_bad_values_exit_2_naming_the_option(capsys, argv, flag):
    assert main(["emulate", "kudosity-v2", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"error: {flag}")


def test_emulate_bad_value_exits_2_as_a_process():
    cmd = [sys.executable, "-m", "smsrelay", "emulate", "smskit", "--rate-limit", "lots"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--rate-limit" in done.stderr and not done.stdout


def test_requests_counted_out_of_arrival_order_are_judged_by_arrival():
    # Stamped on arrival, then counted under the lock: the later arrival may be counted first.
    window = _SlidingWindow(RateLimit(2, 1.0))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert window.admit("a", t0 + timedelta(seconds=1.0)) is None
    assert window.admit("a", t0 + timedelta(seconds=0.5)) is None
    # At 1.6 s the request of 0.5 s has left the window; only the one of 1.0 s is in it.
    assert window.admit("a", t0 + timedelta(seconds=1.6)) is None
    assert window.admit("a", t0 + timedelta(seconds=1.7)) == pytest.approx(0.3)
