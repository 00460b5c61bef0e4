"""The Action with ``routing-file``: one step sends through several accounts, each recipient by its route."""

from __future__ import annotations

import json

from smsrelay.emulators.mesms import MeSmsEmulator
from smsrelay.emulators.smskit import SmsKitEmulator
from tests.fixtures.smskit import SMSKIT_KEY

THAI, AUSTRALIAN = "+66812345678", "+61491570156"


def routes(mesms: MeSmsEmulator, smskit: SmsKitEmulator) -> str:
    """Thai numbers through ME-SMS, the rest through an SMSKit phone; the keys come from the step's env."""
    return f"""\
accounts:
  th:
    provider: mesms
    api_key: ${{MESMS_KEY}}
    sender: Acme
    base_url: {mesms.url}
  phone:
    provider: smskit
    api_key: ${{SMSKIT_KEY}}
    base_url: {smskit.url}
routes:
  - match: {{country: TH}}
    accounts: [th]
  - accounts: [phone]
"""


def run_routed(run_action, mesms, smskit, **inputs: str):
    env = {"MESMS_KEY": "test-key", "SMSKIT_KEY": SMSKIT_KEY}
    base = {"routing-file": "sms/routes.yaml", "to": f"{THAI}\n{AUSTRALIAN}", "message": "Deploy done"}
    return run_action(base | inputs, files={"sms/routes.yaml": routes(mesms, smskit)}, extra=env)


def test_a_dry_run_shows_each_recipients_account_and_sends_nothing(run_action, start_emulator):
    mesms, smskit = start_emulator("mesms"), start_emulator("smskit")
    run = run_routed(run_action, mesms, smskit, **{"dry-run": "true"})
    assert run.code == 0, run.stdout + run.stderr
    statuses = run.json("statuses")
    assert [(s["to"], s["account"], s["status"]) for s in statuses] == [
        ("+668•••••678", "th", "dry-run"),
        ("+614•••••156", "phone", "dry-run"),
    ]
    assert "via th" in run.summary and "via phone" in run.summary
    assert mesms.received("POST") == [] and smskit.received("POST") == []


def test_a_mixed_batch_reaches_both_accounts_and_outputs_stay_masked(run_action, start_emulator):
    mesms, smskit = start_emulator("mesms"), start_emulator("smskit")
    run = run_routed(run_action, mesms, smskit)
    assert run.code == 0, run.stdout + run.stderr
    assert len(mesms.received("POST", "/api/v2/sms/send")) == 1
    assert len(smskit.received("POST", "/api/sms/send")) == 1
    assert [s["account"] for s in run.json("statuses")] == ["th", "phone"]
    for text in (json.dumps(run.outputs), run.summary):
        assert "812345678" not in text and "491570156" not in text
    assert "test-key" not in run.stdout.replace("::add-mask::test-key", "")


def test_a_bad_routing_file_exits_2_naming_the_input_file_line_and_key(run_action, start_emulator):
    mesms, smskit = start_emulator("mesms"), start_emulator("smskit")
    bad = routes(mesms, smskit).replace("accounts: [phone]", "accounts: [nope]")
    env = {"MESMS_KEY": "test-key", "SMSKIT_KEY": SMSKIT_KEY}
    run = run_action(
        {"routing-file": "routes.yaml", "to": THAI, "message": "hi"}, files={"routes.yaml": bad}, extra=env
    )
    assert run.code == 2
    [error] = run.errors
    assert "Invalid input%3A routing-file" in error
    assert "routes.yaml:14, field 'routes.1.accounts.0': no account named 'nope'" in error
    assert mesms.received("POST") == [] and smskit.received("POST") == []


def test_routing_file_cannot_be_given_with_a_providers_own_inputs(run_action, start_emulator):
    mesms, smskit = start_emulator("mesms"), start_emulator("smskit")
    run = run_routed(run_action, mesms, smskit, **{"api-key": "k"})
    assert run.code == 2
    assert "cannot be given with api-key" in run.errors[0]
    assert mesms.received("POST") == [] and smskit.received("POST") == []


def test_a_bad_number_in_to_exits_2_naming_its_item(run_action, start_emulator):
    mesms, smskit = start_emulator("mesms"), start_emulator("smskit")
    run = run_routed(run_action, mesms, smskit, to=f"{THAI}, nonsense")
    assert run.code == 2
    assert "Invalid input%3A to" in run.errors[0] and "to item 2" in run.errors[0]
    assert mesms.received("POST") == [] and smskit.received("POST") == []
