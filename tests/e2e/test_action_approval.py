"""The Action's approval gate (``wait-for: reply``) decides exactly one gate, by the core's rule.

Each gate is the entrypoint as a subprocess, as the runner starts it, against an emulator
over loopback: Kudosity V2 (its polled replies are not threaded, so a bare "YES" can only
be told apart by time and code) and the sandbox (which threads replies).
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from smsrelay import Client, ManualClock, gate_code
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.fixtures.action import ActionRun, finished, runner_env, wait_until

KEY = "kv2-approval-key-0123456789"
SENDER = "61481074185"
LEAD = "+61491570156"  # no magic tail: neither emulator answers for it

pytestmark = pytest.mark.xdist_group("action-approval")


def kudosity_inputs(emu: KudosityV2Emulator, **kw: str) -> dict[str, str]:
    base = {
        "provider": "kudosity",
        "api-key": KEY,
        "api-url": emu.url,
        "from": SENDER,
        "to": LEAD,
        "wait-for": "reply",
        "poll-interval": "0.05",
    }
    return base | {k.replace("_", "-"): v for k, v in kw.items()}


class Gate:
    """One Action run in the background, in its own workspace."""

    def __init__(self, python: Path, tmp: Path, with_: Mapping[str, str], extra: Mapping[str, str] | None = None):
        tmp.mkdir()
        self.env = runner_env(tmp, with_, extra=extra)
        self.proc = subprocess.Popen(
            [str(python), "-m", "action.main"],
            env=self.env,
            cwd=self.env["GITHUB_WORKSPACE"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self, timeout: float = 60) -> ActionRun:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            self.proc.kill()
            self.proc.wait()
        return finished(self.proc.returncode, out, err, self.env)


def test_a_yes_sent_one_second_before_the_gates_sms_does_not_approve_it(action_venv, tmp_path, start_emulator):
    """The measured bug: the runner's clock minus a 60 s skew window let an earlier YES approve."""
    clock = ManualClock(datetime.now(UTC))
    emu: KudosityV2Emulator = start_emulator("kudosity-v2", api_keys=(KEY,), clock=clock)  # type: ignore[assignment]
    emu.inject_reply(LEAD, "YES")
    emu.advance(1)  # the gate's SMS goes out one second later, by the provider's clock

    run = Gate(action_venv, tmp_path / "gate", kudosity_inputs(emu, message="Deploy?", wait_timeout="1.5")).result()

    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["decision"] == "timeout" and run.outputs["reply"] == ""
    assert "was sent 1s before the gate's message" in run.stdout
    assert len(emu.received("POST", "/v2/sms")) == 1


def test_two_gates_for_one_approver_a_bare_yes_decides_neither_a_coded_one_only_its_gate(
    action_venv, tmp_path, start_emulator
):
    emu: KudosityV2Emulator = start_emulator("kudosity-v2", api_keys=(KEY,), sent_after=0.02, delivered_after=0.05)  # type: ignore[assignment]
    a = Gate(
        action_venv,
        tmp_path / "a",
        kudosity_inputs(emu, message="Deploy api?", message_ref="gate-a", approval_code="true", wait_timeout="60"),
    )
    wait_until(lambda: len(emu.outbound) == 1, timeout=60)
    b = Gate(
        action_venv,
        tmp_path / "b",
        kudosity_inputs(emu, message="Deploy web?", message_ref="gate-b", approval_code="true", wait_timeout="60"),
    )
    wait_until(lambda: len(emu.outbound) == 2 and all(s["status"] == "delivered" for s in emu.outbound), timeout=60)
    code_a, code_b = gate_code("gate-a"), gate_code("gate-b")
    assert code_a != code_b
    bodies = sorted(s["message"] for s in emu.outbound)
    assert bodies == [
        f"Deploy api?\nReply YES {code_a} or NO {code_a}",
        f"Deploy web?\nReply YES {code_b} or NO {code_b}",
    ]

    emu.inject_reply(LEAD, "YES")  # which deploy? neither gate may take it
    emu.inject_reply(LEAD, f"yes {code_b}")
    run_b = b.result()
    emu.inject_reply(LEAD, f"NO {code_a}")  # gate A is still open, and takes only its own code
    run_a = a.result()

    assert run_b.code == 0, run_b.stdout + run_b.stderr
    assert run_b.outputs["decision"] == "approved" and run_b.outputs["reply"] == f"yes {code_b}"
    assert "carries no code, and another message went to that number" in run_b.stdout
    assert f"reply with the gate's code ({code_b})" in run_b.stdout
    assert run_a.code == 1
    assert run_a.outputs["decision"] == "rejected" and run_a.outputs["reply"] == f"NO {code_a}"
    assert f"reply with the gate's code ({code_a})" in run_a.stdout
    assert f"carries the code {code_b}, which is another gate's" in run_a.stdout


def test_a_threaded_reply_decides_its_own_gate_only(action_venv, tmp_path):
    db = tmp_path / "shared-sandbox.db"
    extra = {"SMSRELAY_SANDBOX_PATH": str(db)}
    base = {"provider": "sandbox", "to": LEAD, "wait-for": "reply", "poll-interval": "0.05"}

    def sent() -> list[str]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            try:
                return [i for (i,) in conn.execute("SELECT id FROM messages ORDER BY accepted_at, rowid")]
            except sqlite3.OperationalError:
                return []

    a = Gate(action_venv, tmp_path / "a", base | {"message": "Deploy api?", "wait-timeout": "20"}, extra)
    wait_until(lambda: len(sent()) == 1, timeout=60)
    b = Gate(action_venv, tmp_path / "b", base | {"message": "Deploy web?", "wait-timeout": "20"}, extra)
    wait_until(lambda: len(sent()) == 2, timeout=60)
    first, second = sent()
    sandbox = Client("sandbox", path=str(db), env={})
    try:
        sandbox.provider.inject_reply(LEAD, "YES", in_reply_to=first)  # the provider links it to gate A's SMS
        run_a = a.result()
        sandbox.provider.inject_reply(LEAD, "NO", in_reply_to=second)  # and this one to gate B's
        run_b = b.result()
    finally:
        sandbox.close()

    assert run_a.code == 0, run_a.stdout + run_a.stderr
    assert run_a.outputs["decision"] == "approved" and run_a.outputs["reply"] == "YES"
    assert run_b.code == 1 and run_b.outputs["decision"] == "rejected" and run_b.outputs["reply"] == "NO"
    assert "is threaded by the provider to another message" in run_b.stdout
