"""The setting ``rate_limit_store`` reaches every integration's settings: the Action's (from
``SMSRELAY_RATE_LIMIT_STORE`` in the step's env), the Salesforce bridge's (``sms.rate_limit_store``
in bridge.yaml), and the core's; nowhere is its password shown."""

from __future__ import annotations

import io
from pathlib import Path

from smsrelay_salesforce.config import config_from_mapping

from action.inputs import parse_inputs
from action.main import Runner, build_settings
from smsrelay import load_settings
from tests.fixtures.action import runner_env

STORE = "postgresql://smsrelay:st0re-pass-9@db.internal/smsrelay"


def test_the_action_reads_the_variable_from_the_steps_env(tmp_path: Path) -> None:
    inputs = {"provider": "kudosity", "api-key": "k-123456789", "from": "Acme", "to": "+61491570156"}
    env = runner_env(tmp_path, inputs | {"message": "Hi"}, extra={"SMSRELAY_RATE_LIMIT_STORE": STORE})
    runner = Runner(env, io.StringIO())
    settings = build_settings(runner, parse_inputs(runner))

    assert settings.rate_limit_store == STORE
    assert "st0re-pass-9" not in repr(settings)


def test_the_bridge_reads_it_from_its_sms_section() -> None:
    token = {"auth": "token", "instance_url": "https://acme.my.salesforce.com", "access_token": "${SF_TOKEN}"}
    sms = {"provider": "kudosity", "api_key": "${KEY}", "sender": "Acme", "rate_limit_store": "${PG_URL}"}
    env = {"SF_TOKEN": "00Dxx0000001gPL!AQ0AQH0dMHZfz972Sz", "KEY": "k-live-123456", "PG_URL": STORE}
    cfg = config_from_mapping({"salesforce": token, "sms": sms}, env=env)

    assert cfg.sms.rate_limit_store == STORE
    assert "st0re-pass-9" not in repr(cfg.sms)


def test_the_provider_variable_wins_over_the_global_one() -> None:
    env = {
        "SMSRELAY_KUDOSITY_API_KEY": "k-123456789",
        "SMSRELAY_RATE_LIMIT_STORE": "postgresql://db-a/x",
        "SMSRELAY_KUDOSITY_RATE_LIMIT_STORE": "postgresql://db-b/x",
    }
    assert load_settings("kudosity", env=env).rate_limit_store == "postgresql://db-b/x"
