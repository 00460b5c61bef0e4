"""``smsrelay-salesforce``: check, sync --once, backfill, runs; exit codes, JSON output, redacted logs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import yaml
from smsrelay_salesforce.cli import main

from tests.fixtures.bridge import bridge_mapping


def write_config(org: Any, ca: pathlib.Path, tmp: pathlib.Path, **overrides: Any) -> pathlib.Path:
    data = bridge_mapping(org, ca, tmp, **overrides)
    data["sms"].update(sent_after=0, delivered_after=0, reply_after=0)
    path = tmp / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sync_once_as_the_installed_command(sf_org, sf_tls, tmp_path) -> None:
    sf_org.insert("SMS_Message__c", [{"To__c": "+61491570004", "Body__c": "Hi", "Status__c": "Queued"}])
    path = write_config(sf_org, sf_tls.ca_path, tmp_path)
    token = sf_org.issue_token()
    env = {**os.environ, "SF_TEST_TOKEN": token}
    exe = pathlib.Path(sys.executable).with_name("smsrelay-salesforce")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "smsrelay_salesforce.cli"]
    done = subprocess.run(
        [*cmd, "sync", "--once", "--json", "--log-format", "json", "-vv", "-c", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["sent"] == 1 and summary["replies"] == 1 and summary["total_calls"] >= 4
    for line in done.stderr.strip().splitlines():
        assert json.loads(line)["level"] in ("debug", "info", "warning", "error")
    assert token not in done.stdout + done.stderr


def test_check_passes_on_the_shipped_metadata_and_names_a_missing_field(
    sf_org, sf_tls, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("SF_TEST_TOKEN", sf_org.issue_token())
    good = write_config(sf_org, sf_tls.ca_path, tmp_path)
    assert main(["check", "-c", str(good)]) == 0
    assert "every mapped field exists" in capsys.readouterr().out
    bad = write_config(
        sf_org,
        sf_tls.ca_path,
        tmp_path,
        mapping={"message": {"fields": {"sender": "Sender_Id__c", "body": "Send_At__c"}}},
        send={"template": "Hi {{ Account__r.Name }}"},
    )
    assert main(["check", "-c", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "mapping.message.fields.sender: SMS_Message__c.Sender_Id__c does not exist" in out
    assert "mapping.message.fields.body: SMS_Message__c.Send_At__c is a datetime field" in out
    assert "no relationship Account__r" in out


def test_a_bad_config_exits_2_with_the_file_and_line(tmp_path, capsys) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text("salesforce:\n  auth: password\n")
    assert main(["sync", "--once", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2" in err and "salesforce.auth" in err


def test_an_expired_token_exits_3_without_printing_it(sf_org, sf_tls, tmp_path, capsys, monkeypatch) -> None:
    token = sf_org.issue_token()
    monkeypatch.setenv("SF_TEST_TOKEN", token)
    path = write_config(sf_org, sf_tls.ca_path, tmp_path)
    sf_org.expire_sessions()
    assert main(["sync", "--once", "-v", "-c", str(path)]) == 3
    captured = capsys.readouterr()
    assert "session expired" in captured.err and token not in captured.out + captured.err


def test_dry_run_then_sync_then_runs_then_backfill(sf_org, sf_tls, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SF_TEST_TOKEN", sf_org.issue_token())
    sf_org.insert("SMS_Message__c", [{"To__c": "+61491570130", "Body__c": "Hi", "Status__c": "Queued"}])
    path = write_config(sf_org, sf_tls.ca_path, tmp_path)
    assert main(["sync", "--once", "--dry-run", "-c", str(path)]) == 0
    assert "dry run (nothing sent or written)" in capsys.readouterr().out
    assert sf_org.records("SMS_Message__c")[0]["Status__c"] == "Queued"
    assert main(["sync", "--once", "--push-only", "-c", str(path)]) == 0
    assert "sent 1," in capsys.readouterr().out
    # The delivery report was not pulled; backfill asks the provider for the status instead.
    assert main(["backfill", "--since", "2020-01-01", "--json", "-c", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["deliveries_updated"] == 1
    assert sf_org.records("SMS_Message__c")[0]["Delivery_Status__c"] == "Delivered"
    assert main(["runs", "-c", str(path)]) == 0
    runs = capsys.readouterr().out.splitlines()
    assert len(runs) == 3 and "backfill" in runs[0] and "sync (dry run)" in runs[2]


def test_sync_every_runs_cycle_after_cycle(sf_org, sf_tls, tmp_path) -> None:
    path = write_config(sf_org, sf_tls.ca_path, tmp_path)
    sf_org.insert("SMS_Message__c", [{"To__c": "+61491570131", "Body__c": "Hi", "Status__c": "Queued"}])
    env = {**os.environ, "SF_TEST_TOKEN": sf_org.issue_token()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsrelay_salesforce.cli", "sync", "--every", "1s", "--json", "-c", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        cycles = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert cycles[0]["sent"] == 1 and cycles[1]["sent"] == 0 and cycles[2]["sent"] == 0
    assert sum(c["replies"] for c in cycles) == 0 and all(not c["errors"] for c in cycles)
