"""The Action against the Kudosity V2 emulator over loopback HTTP, as a user's workflow
would run it against the real API (``api-url`` points at the emulator).

The emulator runs on the real clock with sub-second delays: the entrypoint is a
separate process and polls on wall time, as it does on a runner.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from action.inputs import parse_inputs
from action.main import _run, build_settings
from action.report import mask_number
from action.runner import Runner
from smsrelay import Client
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.fixtures.action import ActionRun, finished, runner_env, wait_until

KEY = "kv2-action-key-0123456789"
SENDER = "61481074185"
OK, OK_2, BOUNCES, SAYS_YES, SAYS_NO = "+61491570156", "+61491570157", "+61491570001", "+61491570004", "+61491570005"


@pytest.fixture
def kudosity(start_emulator) -> KudosityV2Emulator:
    emu: KudosityV2Emulator = start_emulator(
        "kudosity-v2", api_keys=(KEY,), sent_after=0.05, delivered_after=0.1, reply_after=0.15
    )  # type: ignore[assignment]
    return emu


def inputs(emu: KudosityV2Emulator, **kw: str) -> dict[str, str]:
    base = {"provider": "kudosity", "api-key": KEY, "api-url": emu.url, "from": SENDER, "poll-interval": "0.05"}
    return base | {k.replace("_", "-"): v for k, v in kw.items()}


def run_in_process(emu: KudosityV2Emulator, tmp: Path, with_: dict[str, str], **client: Any) -> ActionRun:
    """The entrypoint's steps in this process, on a client built with ``client`` options
    (a reconciliation window of 0 s, where a subprocess would wait out the real one)."""
    env = runner_env(tmp, with_)
    out = io.StringIO()
    runner = Runner(env, out)
    parsed = parse_inputs(runner)
    sms = Client(settings=build_settings(runner, parsed), **client)
    try:
        code = _run(runner, sms, parsed)
    finally:
        sms.close()
    return finished(code, out.getvalue(), "", env)


def sent(emu: KudosityV2Emulator) -> list[dict]:
    return [r.json() for r in emu.received("POST", "/v2/sms")]


def test_send_and_wait_for_delivery(run_action, kudosity):
    run = run_action(
        inputs(kudosity, to=f"{OK}, {OK_2}", message="Deployed {{ github.repository }}", wait_for="delivery")
    )
    assert run.code == 0, run.stdout + run.stderr
    bodies = sent(kudosity)
    assert sorted(b["recipient"] for b in bodies) == [OK[1:], OK_2[1:]]  # V2 OpenAPI SendSMSRequest: digits, no "+"
    assert {b["message"] for b in bodies} == {"Deployed acme/api"}
    assert all(r.header("x-api-key") == KEY for r in kudosity.received("POST", "/v2/sms"))
    assert run.outputs["status"] == "delivered"
    assert sorted(run.json("message-ids")) == sorted(s["id"] for s in kudosity.outbound)
    shown = [line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("::add-mask::")]
    assert KEY not in "\n".join(shown) + run.summary + str(run.outputs)


def test_bounce_fails_the_step(run_action, kudosity):
    run = run_action(inputs(kudosity, to=BOUNCES, message="hi", wait_for="delivery"))
    assert run.code == 1
    assert run.outputs["status"] == "failed"
    assert len(sent(kudosity)) == 1


@pytest.mark.parametrize(("number", "decision", "code"), [(SAYS_YES, "approved", 0), (SAYS_NO, "rejected", 1)])
def test_approval_gate_by_reply(run_action, kudosity, number, decision, code):
    run = run_action(inputs(kudosity, to=number, message="Deploy to prod? YES/NO", wait_for="reply", wait_timeout="20"))
    assert run.code == code, run.stdout + run.stderr
    assert run.outputs["decision"] == decision
    assert run.outputs["reply-from"] == mask_number(number)  # outputs hold no full number


def test_dry_run_makes_no_request(run_action, kudosity):
    run = run_action(inputs(kudosity, to=OK, message="hi", dry_run="true"))
    assert run.code == 0, run.stdout
    assert kudosity.received() == []
    assert '"endpoint": "' + kudosity.url in run.stdout


def test_wrong_key_is_an_input_error(run_action, kudosity):
    run = run_action(inputs(kudosity, to=OK, message="hi") | {"api-key": "wrong-key-000000"})
    assert run.code == 2
    assert run.errors[0].startswith("::error title=Invalid input%3A api-key::")
    assert "wrong-key-000000" not in run.stdout.replace("::add-mask::wrong-key-000000\n", "")
    assert kudosity.outbound == []


def test_server_error_is_never_sent_twice(kudosity, tmp_path):
    """A 503 on the send: retried, or looked up by key and reported in doubt; never sent twice.

    In this process, with a reconciliation window of 0 s, so no real time passes.
    """
    kudosity.inject("status", status=503, method="POST", path="/v2/sms")
    run = run_in_process(kudosity, tmp_path, inputs(kudosity, to=OK, message="hi"), reconcile_window=0)
    assert len(kudosity.outbound) <= 1
    if run.outputs["status"] == "unknown":
        assert run.code == 1 and len(run.json("unresolved-keys")) == 1
    else:
        assert run.code == 0, run.stdout
        assert run.outputs["message-id"] == kudosity.outbound[0]["id"]
        assert run.json("unresolved-keys") == []


def test_lost_response_is_looked_up_not_resent(run_action, kudosity):
    # The request is handled, then the connection drops: the send happened, the client cannot know.
    kudosity.inject("reset_after", method="POST", path="/v2/sms")
    run = run_action(inputs(kudosity, to=OK, message="hi"))
    assert len(kudosity.outbound) == 1, run.stdout
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["message-id"] == kudosity.outbound[0]["id"]


def test_injected_reply_from_the_release_manager(run_action, kudosity):
    """The gate goes to the on-call number; only the release manager's reply decides."""
    lead = "+61491570199"

    def reply(env):
        wait_until(lambda: kudosity.outbound)
        kudosity.inject_reply(OK, "YES")  # the on-call engineer is not an approver
        kudosity.inject_reply(lead, "no, wait")

    run = run_action(
        inputs(kudosity, to=OK, message="Deploy? Reply YES", wait_for="reply", reply_from=lead, wait_timeout="20"),
        during=reply,
    )
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["decision"] == "rejected"
    assert run.outputs["reply"] == "no, wait" and run.outputs["reply-from"] == mask_number(lead)


def test_reply_wait_times_out(run_action, kudosity):
    run = run_action(inputs(kudosity, to=OK, message="Deploy?", wait_for="reply", wait_timeout="0.5"))
    assert run.code == 1
    assert run.outputs["decision"] == "timeout"
    assert len(sent(kudosity)) == 1


def test_in_doubt_messages_are_not_resent_and_their_keys_are_an_output(kudosity, tmp_path):
    """The send is handled but its answer lost, and the lookup by key fails too: in doubt.

    Run in this process, with a reconciliation window of 0 s, so no real time passes.
    """
    kudosity.inject("reset_after", method="POST", path="/v2/sms")
    kudosity.inject("status", status=503, method="GET", path="/v2/sms", times=50)
    run = run_in_process(kudosity, tmp_path, inputs(kudosity, to=OK, message="hi", retries="0"), reconcile_window=0)
    assert run.code == 1
    assert len(kudosity.outbound) == 1  # sent once, never again
    keys = run.json("unresolved-keys")
    assert len(keys) == 1 and keys[0].startswith("sr-")
    assert kudosity.outbound[0]["message_ref"] == keys[0][:500]  # the key the provider's log holds
    assert run.outputs["status"] == "unknown"
    [error] = [e for e in run.errors if "Send outcome unknown" in e]
    assert "unresolved-keys output" in error and "Client.lookup" not in error
    assert "re-run" in error  # what a workflow can do, in workflow terms
    assert json.loads(run.outputs["statuses"])[0]["status"] == "unknown"


@pytest.mark.parametrize("dry_run", ["true", "false"])
def test_a_missing_sender_names_the_from_input_even_in_a_dry_run(in_process, kudosity, dry_run):
    # Kudosity refuses a send without a sender; the core refuses it first, naming its field
    # (sender), and the Action tells it as its own input, from.
    code, log, _ = in_process(inputs(kudosity, to=OK, message="hi", dry_run=dry_run) | {"from": ""})
    assert code == 2
    assert "::error title=Invalid input%3A from::" in log
    assert "Input 'from'" in log and "sender_" not in log
    assert not kudosity.received("POST", "/v2/sms")
