"""``smsrelay`` as a subprocess against the Kudosity emulators: send on both APIs, and V2 webhooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.kudosity import HOOK_SECRET, SENDER, V1_KEY, V1_SECRET, V2_KEY


@pytest.fixture
def cli(tmp_path):
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SMSRELAY_")}

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smsrelay", *args],
            env={**base_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def v2_env(emu, **extra: str) -> dict[str, str]:
    env = {
        "SMSRELAY_PROVIDER": "kudosity",
        "SMSRELAY_KUDOSITY_API_KEY": V2_KEY,
        "SMSRELAY_KUDOSITY_SENDER": SENDER,
        "SMSRELAY_KUDOSITY_WEBHOOK_SECRET": HOOK_SECRET,
    }
    env.update(extra)
    return env


def test_send_v2_from_env_with_base_url_flag(cli, kudosity_v2_emulator):
    p = cli(
        "send", "--provider", "kudosity", "--base-url", kudosity_v2_emulator.url,
        "+61491570156", "+61491570157", "-m", "Deploy {{ v }} done", "--var", "v=1.4", "--json",
        env=v2_env(kudosity_v2_emulator),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)["results"]
    assert [r["status"] for r in results] == ["queued", "queued"]
    assert {m["id"] for m in kudosity_v2_emulator.outbound} == {r["message_id"] for r in results}
    assert V2_KEY not in p.stdout + p.stderr


def test_send_v1_from_yaml_with_env_secret(cli, kudosity_v1_emulator, tmp_path):
    cfg = tmp_path / "smsrelay.yaml"
    cfg.write_text(
        "provider: kudosity\n"
        "kudosity:\n"
        "  api: v1\n"
        f"  api_key: {V1_KEY}\n"
        "  api_secret: ${KUDOSITY_SECRET}\n"
        f"  sender: {SENDER}\n"
        f"  base_url: {kudosity_v1_emulator.url}\n"
    )
    numbers = [f"+614915701{i:02d}" for i in range(10, 40)]
    p = cli(
        "send", "--config", str(cfg), *numbers, "-m", "Outage resolved", "--json", env={"KUDOSITY_SECRET": V1_SECRET}
    )
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)["results"]) == 30
    assert len(kudosity_v1_emulator.received("POST", "/send-sms.json")) == 1


def test_v1_without_secret_exits_2_naming_it(cli, tmp_path):
    cfg = tmp_path / "smsrelay.yaml"
    cfg.write_text(f"provider: kudosity\nkudosity:\n  api: v1\n  api_key: {V1_KEY}\n")
    p = cli("send", "--config", str(cfg), "+61491570156", "-m", "hi")
    assert p.returncode == 2
    assert "api_secret" in p.stderr


def test_webhooks_register_list_delete(cli, kudosity_v2_emulator):
    env = v2_env(kudosity_v2_emulator, SMSRELAY_KUDOSITY_BASE_URL=kudosity_v2_emulator.url)
    p = cli(
        "webhooks",
        "register",
        "https://hooks.example.com/sms",
        "--events",
        "delivery",
        "reply",
        "--name",
        "ops",
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert "SMS_STATUS, SMS_INBOUND" in p.stdout
    [hook] = kudosity_v2_emulator.state()["webhooks"]
    assert hook["url"] == f"https://hooks.example.com/sms?token={HOOK_SECRET}"
    assert hook["id"] in p.stdout
    listed = cli("webhooks", "list", env=env)
    assert listed.returncode == 0 and hook["id"] in listed.stdout
    assert HOOK_SECRET not in listed.stdout  # the token is redacted
    deleted = cli("webhooks", "delete", hook["id"], env=env)
    assert deleted.returncode == 0 and kudosity_v2_emulator.state()["webhooks"] == []


def test_webhooks_register_without_secret_exits_2(cli, kudosity_v2_emulator):
    env = v2_env(kudosity_v2_emulator, SMSRELAY_KUDOSITY_BASE_URL=kudosity_v2_emulator.url)
    del env["SMSRELAY_KUDOSITY_WEBHOOK_SECRET"]
    p = cli("webhooks", "register", "https://hooks.example.com/sms", env=env)
    assert p.returncode == 2
    assert "webhook_secret" in p.stderr
    assert kudosity_v2_emulator.state()["webhooks"] == []


def test_bad_key_exits_2_with_kudosity_text(cli, kudosity_v2_emulator):
    env = v2_env(kudosity_v2_emulator, SMSRELAY_KUDOSITY_API_KEY="wrong-key-123456789")
    p = cli("send", "--base-url", kudosity_v2_emulator.url, "+61491570156", "-m", "hi", env=env)
    assert p.returncode == 2
    assert "The auth data you have provided is invalid." in p.stderr
    assert "wrong-key-123456789" not in p.stderr
