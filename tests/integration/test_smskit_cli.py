"""`smsrelay devices`, `send` and `status` on SMSKit, as a subprocess against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from smsrelay.emulators.smskit import SmsKitEmulator


@pytest.fixture
def emu(start_emulator) -> SmsKitEmulator:
    emulator = start_emulator("smskit")  # the real clock: the subprocess has its own
    assert isinstance(emulator, SmsKitEmulator)
    return emulator


@pytest.fixture
def run(emu, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSRELAY_")}
    env |= {"SMSRELAY_PROVIDER": "smskit", "SMSRELAY_SMSKIT_API_KEY": "sk_test_key"}
    env["SMSRELAY_SMSKIT_BASE_URL"] = emu.url
    env["SMSRELAY_SANDBOX_PATH"] = str(tmp_path / "sandbox.db")

    def run(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        e = dict(env)
        if key is not None:
            e["SMSRELAY_SMSKIT_API_KEY"] = key
        return subprocess.run(
            [sys.executable, "-m", "smsrelay", *args], env=e, capture_output=True, text=True, timeout=60
        )

    return run


def test_devices_prints_each_phone_and_its_sims(run):
    p = run("devices")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == (
        "dvc_3K7J2H5F8M1N4Q9R6V0W  Pixel 6 — Nairobi  [Online] battery 87%  SIM 0 Safaricom, SIM 1 Airtel (disabled)"
    )
    assert lines[1].startswith("dvc_9Q2W4E6R8T0Y1U3I5O7P  Galaxy A14 — Mombasa  [Offline]")


def test_devices_json(run):
    p = run("devices", "--json")
    assert p.returncode == 0, p.stderr
    devices = json.loads(p.stdout)
    assert [d["deviceId"] for d in devices] == ["dvc_3K7J2H5F8M1N4Q9R6V0W", "dvc_9Q2W4E6R8T0Y1U3I5O7P"]


def test_devices_with_a_wrong_key_exits_2_without_showing_it(run, emu):
    p = run("devices", key="sk_live_leaky_0123456789")
    assert p.returncode == 2
    assert "refused the API key" in p.stderr
    assert "sk_live_leaky_0123456789" not in p.stdout + p.stderr


def test_devices_on_a_provider_without_phones_says_so(run, tmp_path):
    p = run("devices", "--provider", "sandbox")
    assert p.returncode == 1 and "has no devices" in p.stderr


def test_send_then_status(run, emu):
    p = run("send", "+254712345678", "+254712345679", "-m", "Hi {{ who }}", "--var", "who=Ann", "--json")
    assert p.returncode == 0, p.stderr
    ids = [r["message_id"] for r in json.loads(p.stdout)["results"]]
    assert len(ids) == 2 and all(i.startswith("job_") for i in ids)
    assert sorted(j["_message"] for j in emu.jobs.values()) == ["Hi Ann", "Hi Ann"]
    s = run("status", *ids, "--json")
    assert s.returncode == 0, s.stderr
    reports = json.loads(s.stdout)
    assert set(reports) == set(ids)
    # On the real clock the jobs may have moved on by now; each is on its way or delivered.
    assert {v["raw_status"] for v in reports.values()} <= {"Pending", "Assigned", "Sent", "Delivered"}
