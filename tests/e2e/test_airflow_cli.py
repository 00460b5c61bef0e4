"""Airflow's own CLI sees the provider: providers list/hooks/widgets/triggers/notifications,
and a connection of each kind can be added, read back and tested (the form's Test button).

The commands run through Airflow's CLI parser in one subprocess, to pay Airflow's
import cost once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.airflow import new_airflow_home

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-http")]

SCRIPT = """
import sys
from airflow.cli.cli_parser import get_parser

parser = get_parser()
for argv in {commands!r}:
    print("##### " + " ".join(argv), flush=True)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except SystemExit as exc:
        print("exit", exc.code)
    sys.stdout.flush()
"""


@pytest.fixture(scope="module")
def cli(airflow_db_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("airflow-cli")
    af = new_airflow_home(airflow_db_template, where)
    # Off by default: https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#test-connection
    af.env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    extra = json.dumps({"path": str(where / "sandbox.db")})
    commands = [
        ["providers", "list", "-o", "json"],
        ["providers", "hooks", "-o", "json"],
        ["providers", "widgets", "-o", "json"],
        ["providers", "triggers", "-o", "json"],
        ["providers", "notifications", "-o", "json"],
        ["connections", "add", "sms_sandbox", "--conn-type", "smsrelay_sandbox", "--conn-extra", extra],
        ["connections", "get", "sms_sandbox", "-o", "json"],
        ["connections", "test", "sms_sandbox"],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(commands=commands)],
        env=af.env,
        cwd=af.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    sections = {}
    for chunk in proc.stdout.split("##### ")[1:]:
        head, _, body = chunk.partition("\n")
        sections[head.strip()] = body
    assert len(sections) == len(commands), proc.stdout[-5000:]
    return sections


def _json(text: str) -> Any:
    return json.loads(next(line for line in text.splitlines() if line.startswith("[")))


def test_providers_list_shows_smsrelay(cli: dict[str, str]) -> None:
    providers = {p["package_name"]: p for p in _json(cli["providers list -o json"])}
    assert providers["smsrelay-airflow"]["version"] == "0.1.0"


def test_each_backend_is_a_connection_type_with_its_hook(cli: dict[str, str]) -> None:
    hooks = {h["connection_type"]: h for h in _json(cli["providers hooks -o json"])}
    for backend, hook in {
        "kudosity": "KudositySmsHook",
        "smskit": "SmsKitSmsHook",
        "mesms": "MeSmsSmsHook",
        "kaleyra": "KaleyraSmsHook",
        "sandbox": "SandboxSmsHook",
    }.items():
        assert hooks[f"smsrelay_{backend}"]["class"] == f"smsrelay_airflow.hooks.sms.{hook}"


def test_declarative_connection_fields_reach_the_form(cli: dict[str, str]) -> None:
    widgets = {w["connection_parameter_name"] for w in _json(cli["providers widgets -o json"])}
    assert {"extra__smsrelay_kudosity__api_secret", "extra__smsrelay_sandbox__path"} <= widgets


def test_triggers_and_notifier_are_registered(cli: dict[str, str]) -> None:
    triggers = {t["class"] for t in _json(cli["providers triggers -o json"])}
    assert "smsrelay_airflow.triggers.sms" in triggers
    notifiers = {n["notification_class_name"] for n in _json(cli["providers notifications -o json"])}
    assert "smsrelay_airflow.notifications.sms.SmsNotifier" in notifiers


def test_a_connection_is_added_shown_and_tested(cli: dict[str, str]) -> None:
    [conn] = _json(cli["connections get sms_sandbox -o json"])
    assert conn["conn_type"] == "smsrelay_sandbox"
    assert "Connection success!" in cli["connections test sms_sandbox"]
