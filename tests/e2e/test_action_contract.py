"""The Action as the runner runs it: ``python -m action.main`` in the image's venv.

Every test starts the entrypoint as a subprocess with ``INPUT_*`` for every declared
input and temporary ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY``/``GITHUB_EVENT_PATH``/
``GITHUB_WORKSPACE``, against the sandbox (its SQLite file) or an emulator over HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from action.report import mask_number
from smsrelay import Client
from tests.fixtures.action import action_metadata, runner_env, wait_until

OK_1, OK_2 = "+61491570156", "+61491570157"
FAILS, YES, NO, NO_REPORT = "+61491570001", "+61491570004", "+61491570005", "+61491570008"


def sandbox_messages(run_env: dict[str, str] | object) -> list[tuple[str, str]]:
    """(phone, body) of everything the sandbox accepted, in order."""
    path = Path(run_env["SMSRELAY_SANDBOX_PATH"])  # type: ignore[index]
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return list(db.execute("SELECT phone, body FROM messages ORDER BY accepted_at, rowid"))
        except sqlite3.OperationalError:
            return []


def logged(run) -> str:
    """Everything the step printed, except the mask commands themselves."""
    lines = (run.stdout + run.stderr).splitlines()
    return "\n".join(line for line in lines if not line.startswith("::add-mask::"))


# -- sending ---------------------------------------------------------------------


def test_send_writes_outputs_and_summary(run_action):
    run = run_action(
        {
            "provider": "sandbox",
            "to": f"{OK_1},\n{OK_2}",
            "message": "Deployed {{ github.repository }}@{{ github.sha[:7] }} to {{ vars.env }} by {{ github.actor }}",
            "template-vars": '{"env": "prod"}',
        }
    )
    assert run.code == 0, run.stdout + run.stderr
    sent = sandbox_messages(run.env)
    body = "Deployed acme/api@0123456 to prod by octocat"
    assert sent == [(OK_1, body), (OK_2, body)]
    ids = run.json("message-ids")
    assert len(ids) == 2 and run.outputs["message-id"] == ids[0]
    assert run.outputs["status"] == "queued"
    assert [s["status"] for s in run.json("statuses")] == ["queued", "queued"]
    assert run.outputs["parts"] == "2" and run.outputs["dry-run"] == "false"
    assert run.outputs["reply"] == "" and run.outputs["decision"] == ""
    # The summary: a table of masked recipient, status, parts and message id.
    assert "| # | Recipient | Status | Parts | Message id |" in run.summary
    assert f"| 1 | `+614•••••156` | queued | 1 | {ids[0]} |" in run.summary
    assert OK_1 not in run.summary and OK_1.lstrip("+") not in run.summary
    assert not run.errors


def test_every_declared_output_is_written(run_action):
    run = run_action({"provider": "sandbox", "to": OK_1, "message": "hi", "dry-run": "true"})
    assert set(run.outputs) == set(action_metadata()["outputs"])


def test_outputs_survive_newlines_percent_and_json(run_action):
    run = run_action(
        {"provider": "sandbox", "to": YES, "message": "100% sure?\nReply", "wait-for": "reply", "poll-interval": "0.05"}
    )
    assert run.code == 0, run.stdout
    assert run.outputs["reply"] == "YES"
    assert sandbox_messages(run.env)[0][1] == "100% sure?\nReply"
    assert json.loads(run.outputs["statuses"])[0]["status"] == "delivered"


def test_empty_inputs_mean_defaults(run_action):
    # Runners before defaults, or a `with:` that passes '' explicitly: "" is "unset".
    run = run_action({"provider": "sandbox", "to": OK_1, "message": "hi"}, runner_defaults=False)
    assert run.code == 0, run.stdout
    assert run.outputs["status"] == "queued"


def test_github_context_and_event_payload(run_action):
    event = {"pull_request": {"number": 42, "title": "Fix | pipes"}}
    run = run_action(
        {
            "provider": "sandbox",
            "to": OK_1,
            "message": "PR #{{ github.event.pull_request.number }} on {{ github.ref_name }}: {{ github.run_url }}",
        },
        event=event,
    )
    assert run.code == 0, run.stdout
    body = sandbox_messages(run.env)[0][1]
    assert body == "PR #42 on main: https://github.com/acme/api/actions/runs/1234567890"


def test_to_file_rows_carry_their_own_variables(run_action):
    csv_text = "name,phone,code\nAnn,+61491570156,A1\n,,\nBo,+61491570157,B2\n"
    run = run_action(
        {"provider": "sandbox", "to-file": "people.csv", "message": "Hi {{ name }}, code {{ row.code }}"},
        files={"people.csv": csv_text},
    )
    assert run.code == 0, run.stdout
    assert sandbox_messages(run.env) == [(OK_1, "Hi Ann, code A1"), (OK_2, "Hi Bo, code B2")]
    assert [s["origin"] for s in run.json("statuses")] == ["to-file line 2", "to-file line 4"]


def test_one_bad_row_does_not_sink_the_list(run_action):
    csv_text = "to,name\n+61491570156,Ann\n12,Bad\n+61491570157,Bo\n"
    run = run_action(
        {"provider": "sandbox", "to-file": "list.csv", "message": "Hi {{ name }}"}, files={"list.csv": csv_text}
    )
    assert run.code == 1
    assert [p for p, _ in sandbox_messages(run.env)] == [OK_1, OK_2]
    statuses = run.json("statuses")
    assert [s["status"] for s in statuses] == ["queued", "queued", "rejected"]
    assert "to-file line 3" in statuses[2]["origin"]
    assert any("to-file line 3" in e for e in run.errors)


def test_message_file_and_duplicates(run_action):
    run = run_action(
        {"provider": "sandbox", "to": f"{OK_1}, {OK_1}", "message-file": ".github/sms.txt"},
        files={".github/sms.txt": "Build {{ github.run_number }} is green\n"},
    )
    assert run.code == 0, run.stdout
    assert sandbox_messages(run.env) == [(OK_1, "Build 17 is green")]
    assert any("repeats an earlier number" in w for w in run.warnings)


def test_writes_nothing_into_the_workspace(run_action):
    run = run_action({"provider": "sandbox", "to": OK_1, "message": "hi"}, files={"keep.txt": "x"})
    assert run.code == 0
    assert sorted(p.name for p in run.workspace.rglob("*")) == ["keep.txt"]


# -- masks -----------------------------------------------------------------------


def test_masks_come_before_anything_else(run_action):
    key, secret = "sk-live-0123456789abcdef", "shh-9876543210"
    run = run_action(
        {
            "provider": "sandbox",
            "api-key": key,
            "api-secret": secret,
            "to": f"{OK_1}\n0491570157",
            "default-region": "AU",
            "message": "hi",
            "dry-run": "true",
        }
    )
    assert run.code == 0, run.stdout
    lines = run.stdout.splitlines()
    first_other = next(i for i, line in enumerate(lines) if not line.startswith("::add-mask::"))
    masked = {line.removeprefix("::add-mask::") for line in lines[:first_other]}
    assert {key, secret, OK_1, OK_1[1:], "0491570157", OK_2, OK_2[1:]} <= masked
    assert not any(line.startswith("::add-mask::") for line in lines[first_other:])
    shown = logged(run)
    for value in (key, secret, OK_1[1:], "0491570157", OK_2[1:]):
        assert value not in shown


def test_invalid_number_is_masked_in_the_error(run_action):
    run = run_action({"provider": "sandbox", "to": f"{OK_1}, +61491", "message": "hi"})
    assert run.code == 2
    lines = run.stdout.splitlines()
    assert "::add-mask::+61491" in lines
    assert lines.index("::add-mask::+61491") < next(i for i, line in enumerate(lines) if line.startswith("::error"))
    assert any("to item 2" in e for e in run.errors)
    assert sandbox_messages(run.env) == []


# -- exit codes ------------------------------------------------------------------

BAD_INPUTS = [
    ({"provider": ""}, "provider", "is required"),
    ({"provider": "twilio"}, "provider", "must be one of"),
    ({"to": ""}, "to", "is required"),
    ({"to": "+61491570156, nonsense"}, "to", "to item 2"),
    ({"message": ""}, "message", "is required"),
    ({"message-file": "missing.txt", "message": ""}, "message-file", "does not exist"),
    ({"message-file": "m.txt"}, "message", "not both"),
    ({"message": "Hi {{ name }}"}, "message", "name"),
    ({"message": "Hi {{ env['INPUT_API-KEY'] }}", "api-key": "sk-123456"}, "message", "has no attribute"),
    ({"message": "Hi {% if %}"}, "message", "syntax error"),
    ({"template-vars": "{not json"}, "template-vars", "not valid JSON"),
    ({"template-vars": "[1, 2]"}, "template-vars", "JSON object"),
    ({"dry-run": "yes"}, "dry-run", "true or false"),
    ({"fail-on-error": "nope"}, "fail-on-error", "true or false"),
    ({"retries": "many"}, "retries", "number"),
    ({"retries": "99"}, "retries", "between"),
    ({"timeout": "soon"}, "timeout", "duration"),
    ({"wait-for": "maybe"}, "wait-for", "none, delivery or reply"),
    ({"wait-timeout": "-5"}, "wait-timeout", "duration"),
    ({"priority": "high"}, "priority", "whole number"),
    ({"approve-pattern": "(unclosed", "wait-for": "reply"}, "approve-pattern", "regular expression"),
    ({"reply-from": OK_2}, "reply-from", "wait-for: reply"),
    ({"reply-from": "123", "wait-for": "reply"}, "reply-from", "item 1"),
    ({"api-url": "ftp://example"}, "api-url", "http"),
    ({"provider-options": '{"colour": "red"}'}, "provider-options", "unknown setting"),
    ({"sid": "HX123"}, "sid", "does not apply"),
    ({"to-file": "nophone.csv", "to": ""}, "to-file", "column named"),
    ({"message": "x" * 2000}, "message", "over sandbox's limit"),
    ({"message-file": "expr.txt", "message": ""}, "message-file", "workflow expressions"),
    ({"reveal-numbers": "yes"}, "reveal-numbers", "true or false"),
    ({"api-key": "sk-1234\n5678"}, "api-key", "line break"),
    ({"message-ids": '["sbx-1"]', "wait-for": "delivery"}, "message-ids", "cannot be given with to"),
    ({"message-ids": "sbx-1", "to": "", "message": ""}, "wait-for", "must be delivery"),
    ({"message-ids": "sbx-1", "to": "", "message": "", "dry-run": "true"}, "dry-run", "sends nothing"),
    ({"message-ids": "[1, 2]", "to": "", "message": "", "wait-for": "delivery"}, "message-ids", "JSON array"),
]


FILES = {"m.txt": "hello", "nophone.csv": "name\nAnn\n", "expr.txt": "Build ${{ github.sha }}"}
IDS = [f"{n}-{i}" for i, (_, n, _) in enumerate(BAD_INPUTS)]


@pytest.mark.parametrize(("override", "name", "says"), BAD_INPUTS, ids=IDS)
def test_bad_input_is_named_and_nothing_sent(in_process, override, name, says):
    code, log, env = in_process({"provider": "sandbox", "to": OK_1, "message": "hi", **override}, files=FILES)
    errors = [line for line in log.splitlines() if line.startswith("::error")]
    assert code == 2, log
    assert len(errors) == 1 and errors[0].startswith(f"::error title=Invalid input%3A {name}::"), log
    assert says in errors[0]
    assert sandbox_messages(env) == []
    assert Path(env["GITHUB_OUTPUT"]).read_text() == ""


@pytest.mark.parametrize("case", [0, 3, 10, 12, 28])
def test_bad_input_exits_2_in_a_subprocess(run_action, case):
    override, name, says = BAD_INPUTS[case]
    run = run_action({"provider": "sandbox", "to": OK_1, "message": "hi", **override}, files=FILES)
    assert run.code == 2, run.stdout + run.stderr
    assert len(run.errors) == 1, run.stdout
    assert run.errors[0].startswith(f"::error title=Invalid input%3A {name}::") and says in run.errors[0]
    assert sandbox_messages(run.env) == []
    assert run.outputs == {}


def test_missing_credentials_name_the_input(run_action):
    run = run_action({"provider": "mesms", "to": OK_1, "message": "hi", "api-url": "http://127.0.0.1:9"})
    assert run.code == 2
    assert run.errors[0].startswith("::error title=Invalid input%3A api-key::")


def test_unreachable_provider_fails_with_1(run_action):
    run = run_action(
        {
            "provider": "mesms",
            "api-key": "k-0123456789",
            "from": "Acme",
            "to": "+66812345678",  # ME-SMS reaches Thai numbers only
            "message": "hi",
            "retries": "0",
            "timeout": "2",
        },
        extra={"SMSRELAY_MESMS_BASE_URL": "http://127.0.0.1:9"},
    )
    assert run.code == 1, run.stdout
    # Nothing answered: a failure (or in doubt), never the provider's "rejected".
    assert run.outputs["status"] in ("failed", "unknown")
    assert "k-0123456789" not in logged(run)


def test_failed_delivery_fails_the_step(run_action):
    run = run_action(
        {
            "provider": "sandbox",
            "to": f"{OK_1},{FAILS}",
            "message": "hi",
            "wait-for": "delivery",
            "poll-interval": "0.05",
        }
    )
    assert run.code == 1
    assert run.outputs["status"] == "failed"
    assert [s["status"] for s in run.json("statuses")] == ["delivered", "failed"]
    assert any("not delivered" in e for e in run.errors)
    assert "| failed |" in run.summary


def test_fail_on_error_false_warns_and_passes(run_action):
    run = run_action(
        {
            "provider": "sandbox",
            "to": FAILS,
            "message": "hi",
            "wait-for": "delivery",
            "poll-interval": "0.05",
            "fail-on-error": "false",
        }
    )
    assert run.code == 0
    assert run.outputs["status"] == "failed"
    assert not run.errors and any("fail-on-error is false" in w for w in run.warnings)


# -- dry run ---------------------------------------------------------------------


def test_dry_run_shows_encoding_and_parts_and_sends_nothing(run_action):
    run = run_action(
        {"provider": "sandbox", "api-key": "sk-0123456789", "to": OK_1, "message": "👋 " + "x" * 100, "dry-run": "true"}
    )
    assert run.code == 0, run.stdout
    assert sandbox_messages(run.env) == []
    assert run.outputs["dry-run"] == "true" and run.outputs["status"] == "dry-run"
    assert run.outputs["parts"] == "2" and run.json("message-ids") == []
    assert '"encoding": "UCS-2"' in run.stdout and '"parts": 2' in run.stdout
    assert '"api_key": "***"' in run.stdout and "sk-0123456789" not in logged(run)
    assert "SMS dry run via sandbox" in run.summary


# -- waits -----------------------------------------------------------------------


def test_wait_for_delivery(run_action):
    run = run_action(
        {"provider": "sandbox", "to": OK_1, "message": "hi", "wait-for": "delivery", "poll-interval": "0.05"}
    )
    assert run.code == 0, run.stdout
    assert run.outputs["status"] == "delivered"


def test_wait_for_delivery_times_out(run_action):
    run = run_action(
        {
            "provider": "sandbox",
            "to": OK_1,
            "message": "hi",
            "wait-for": "delivery",
            "poll-interval": "0.05",
            "wait-timeout": "0.3",
        },
        extra={"SMSRELAY_SANDBOX_DELIVERED_AFTER": "60", "SMSRELAY_SANDBOX_SENT_AFTER": "0"},
    )
    assert run.code == 1
    assert run.outputs["status"] == "sent"
    assert any("no final delivery report after 0.3s" in e for e in run.errors)


def test_no_report_at_all_is_a_failure(run_action):
    run = run_action(
        {"provider": "sandbox", "to": NO_REPORT, "message": "hi", "wait-for": "delivery", "poll-interval": "0.05"}
    )
    assert run.code == 1
    assert run.outputs["status"] == "unknown"


def test_reply_yes_approves(run_action):
    run = run_action(
        {"provider": "sandbox", "to": YES, "message": "Deploy? YES/NO", "wait-for": "reply", "poll-interval": "0.05"}
    )
    assert run.code == 0, run.stdout
    assert run.outputs["decision"] == "approved"
    assert run.outputs["reply"] == "YES" and run.outputs["reply-from"] == mask_number(YES)
    assert "Decision: approved" in run.summary


def test_reveal_numbers_shows_the_reply_number_in_full(run_action):
    gate = {"provider": "sandbox", "to": YES, "message": "Deploy?", "wait-for": "reply", "poll-interval": "0.05"}
    run = run_action(gate | {"reveal-numbers": "true"})
    assert run.code == 0, run.stdout
    assert run.outputs["reply-from"] == YES and run.json("statuses")[0]["to"] == YES
    assert YES not in run.summary


def test_reply_no_rejects(run_action):
    run = run_action(
        {"provider": "sandbox", "to": NO, "message": "Deploy? YES/NO", "wait-for": "reply", "poll-interval": "0.05"}
    )
    assert run.code == 1
    assert run.outputs["decision"] == "rejected" and run.outputs["reply"] == "NO"
    assert any("rejected by a reply" in e for e in run.errors)


def test_reply_wait_times_out(run_action):
    run = run_action(
        {
            "provider": "sandbox",
            "to": OK_1,
            "message": "Deploy?",
            "wait-for": "reply",
            "poll-interval": "0.05",
            "wait-timeout": "0.5",
        }
    )
    assert run.code == 1
    assert run.outputs["decision"] == "timeout" and run.outputs["reply"] == ""
    assert any("no approving or rejecting reply within 0.5s" in e for e in run.errors)


def test_injected_reply_from_an_approver_decides(run_action):
    """The gate's recipient is the on-call list; only the lead's reply counts."""
    lead = "+61491570199"

    def reply(env):
        wait_until(lambda: sandbox_messages(env))
        sandbox = Client("sandbox", path=env["SMSRELAY_SANDBOX_PATH"], env={})
        sandbox.provider.inject_reply(OK_1, "approve")  # not an approver
        sandbox.provider.inject_reply(lead, "maybe later")  # matches no pattern
        sandbox.provider.inject_reply(lead, "Approve")
        sandbox.close()

    run = run_action(
        {
            "provider": "sandbox",
            "to": OK_1,
            "message": "Deploy prod? Reply APPROVE",
            "wait-for": "reply",
            "reply-from": lead,
            "approve-pattern": "^approve$",
            "poll-interval": "0.05",
            "wait-timeout": "20",
        },
        during=reply,
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["decision"] == "approved"
    assert run.outputs["reply"] == "Approve" and run.outputs["reply-from"] == mask_number(lead)
    assert "matches neither pattern" in run.stdout


# -- the image's contents ----------------------------------------------------------


def test_import_loads_only_the_chosen_provider(action_venv, tmp_path):
    env = runner_env(tmp_path, {"provider": "sandbox", "to": OK_1, "message": "hi", "dry-run": "true"})
    code = (
        "import sys, io, action.main as m\n"
        "before = sorted(k for k in sys.modules if k.startswith('smsrelay.providers.'))\n"
        "assert m.main(out=io.StringIO()) == 0\n"
        "after = sorted(k for k in sys.modules if k.startswith('smsrelay.providers.'))\n"
        "heavy = sorted(k for k in sys.modules if k.split('.')[0] in "
        "('airflow', 'simple_salesforce', 'starlette', 'uvicorn', 'psycopg', 'requests'))\n"
        "print(before, after, heavy)\n"
    )
    out = subprocess.run([str(action_venv), "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    # batching is the client's request planner (pure Python, no provider), not an adapter.
    assert out.strip() == (
        "['smsrelay.providers.base', 'smsrelay.providers.batching'] "
        "['smsrelay.providers.base', 'smsrelay.providers.batching', 'smsrelay.providers.sandbox'] []"
    )


def test_the_venv_holds_only_the_core(action_venv):
    listed = subprocess.run(
        [
            str(action_venv),
            "-c",
            "import importlib.metadata as m, json\n"
            "print(json.dumps([d.metadata['Name'].lower() for d in m.distributions()]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = set(json.loads(listed))
    assert names == {
        "smsrelay", "requests", "urllib3", "idna", "certifi", "charset-normalizer",
        "phonenumbers", "jinja2", "markupsafe", "pyyaml",
    }  # fmt: skip


def test_provider_settings_errors_name_their_input(in_process):
    code, log, _ = in_process({"provider": "kaleyra", "api-key": "k-0123456789", "to": OK_1, "message": "hi"})
    assert code == 2 and "::error title=Invalid input%3A sid::is required for provider kaleyra" in log
    code, log, _ = in_process(
        {
            "provider": "kaleyra",
            "api-key": "k-0123456789",
            "sid": "HXAP1234",
            "region": "mars",
            "to": OK_1,
            "message": "hi",
        }
    )
    assert code == 2 and "::error title=Invalid input%3A region::unknown Kaleyra region 'mars'" in log
