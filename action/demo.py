"""``make demo``, Action part: the entrypoint run twice as the runner runs it, on the sandbox.

1. a deploy notification to two numbers, waiting for their delivery reports;
2. an approval gate: the sandbox's number ``…0004`` answers YES.

Each run gets ``INPUT_*`` for every input in action.yml (defaults applied, as the
runner does), temporary ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY``/``GITHUB_EVENT_PATH``
files and a workspace; the demo prints the step's log, outputs file and summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

STEPS: list[tuple[str, dict[str, str]]] = [
    (
        "deploy notification, waiting for delivery",
        {
            "provider": "sandbox",
            "to": "+61491570156, +61491570157",
            "message": "{{ github.repository }} {{ github.sha[:7] }} is live in {{ vars.env }}: {{ github.run_url }}",
            "template-vars": '{"env": "production"}',
            "wait-for": "delivery",
            "poll-interval": "0.1",
            "wait-timeout": "10",
        },
    ),
    (
        "approval gate by SMS reply",
        {
            "provider": "sandbox",
            "to": "+61491570004",
            "message": "Deploy {{ github.sha[:7] }} by {{ github.actor }} to production? Reply YES or NO",
            "wait-for": "reply",
            "poll-interval": "0.1",
            "wait-timeout": "10",
        },
    ),
]


def runner_env(tmp: Path, inputs: dict[str, str]) -> dict[str, str]:
    meta: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    (tmp / "workspace").mkdir(exist_ok=True)
    for name in ("set_output", "step_summary"):
        (tmp / name).write_text("")
    (tmp / "event.json").write_text(json.dumps({"ref": "refs/heads/main", "pusher": {"name": "octocat"}}))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "PYTHONUNBUFFERED": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": str(ROOT),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp / "workspace"),
        "GITHUB_OUTPUT": str(tmp / "set_output"),
        "GITHUB_STEP_SUMMARY": str(tmp / "step_summary"),
        "GITHUB_EVENT_PATH": str(tmp / "event.json"),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": "9f2c4e1a0b7d3c5e8f6a1b2c3d4e5f6a7b8c9d0e",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_RUN_ID": "4242424242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_JOB": "deploy",
        "GITHUB_SERVER_URL": "https://github.com",
        "SMSRELAY_SANDBOX_PATH": str(tmp.parent / "sandbox.db"),
        "SMSRELAY_SANDBOX_SENT_AFTER": "0.1",
        "SMSRELAY_SANDBOX_DELIVERED_AFTER": "0.3",
        "SMSRELAY_SANDBOX_REPLY_AFTER": "0.3",
    }
    for name, spec in meta["inputs"].items():
        env[f"INPUT_{name.upper()}"] = inputs.get(name, str(spec.get("default", "")))
    return env


def main() -> int:
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="smsrelay-action-demo-") as tmpdir:
        for i, (title, inputs) in enumerate(STEPS, 1):
            tmp = Path(tmpdir) / f"step{i}"
            tmp.mkdir()
            env = runner_env(tmp, inputs)
            env["GITHUB_ACTION"] = f"step{i}"
            out.write(f"== GitHub Action, step {i}: {title}\n   python -m action.main   (with: {inputs})\n")
            out.flush()
            proc = subprocess.run(
                [sys.executable, "-m", "action.main"],
                env=env,
                cwd=env["GITHUB_WORKSPACE"],
                capture_output=True,
                text=True,
            )
            out.write("-- step log\n" + proc.stdout + proc.stderr)
            out.write(f"-- exit code {proc.returncode}\n")
            out.write("-- $GITHUB_OUTPUT\n" + (tmp / "set_output").read_text())
            out.write("-- $GITHUB_STEP_SUMMARY\n" + (tmp / "step_summary").read_text() + "\n")
            if proc.returncode != 0:
                return proc.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
