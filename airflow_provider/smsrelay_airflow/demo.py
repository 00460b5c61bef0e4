"""``python -m smsrelay_airflow.demo``: approval by SMS on a real Airflow, against the sandbox.

Self-contained and offline: a temporary ``AIRFLOW_HOME`` on SQLite, ``airflow db
migrate``, then the example approval DAG runs twice with ``dag.test()``: once for an
approver who answers YES (the sandbox's magic number ...0004) and once for one who
answers NO (...0005). It prints what each task did and which SMS went out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "example_dags"
DAG_ID = "example_smsrelay_approval"
RUNS = (("+61491570004", "answers YES", "success"), ("+61491570005", "answers NO", "failed"))

# Runs inside the Airflow process: one process for both runs, so Airflow starts once.
_RUNNER = """
import json, sys
from airflow.utils.cli import get_bagged_dag

out = []
for approver in sys.argv[1:]:
    dr = get_bagged_dag(None, "__DAG_ID__").test(run_conf={"approver": approver})
    out.append({"approver": approver, "run_id": dr.run_id, "state": str(getattr(dr.state, "value", dr.state))})
print("SMSRELAY-DEMO-RESULT " + json.dumps(out), flush=True)
""".replace("__DAG_ID__", DAG_ID)


def _env(home: Path, dags: Path, sandbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONWARNINGS": "ignore",
            # Short simulated delays: dag.test() runs on the real clock.
            "AIRFLOW_CONN_SMSRELAY_DEFAULT": json.dumps(
                {
                    "conn_type": "smsrelay_sandbox",
                    "extra": {"path": str(sandbox), "sent_after": 0.2, "delivered_after": 0.5, "reply_after": 1.0},
                }
            ),
        }
    )
    return env


def _tasks(db: Path, run_id: str, log: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY start_date IS NULL,"
            " start_date",
            (DAG_ID, run_id),
        ).fetchall()
        replies = conn.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'approval' AND key = 'return_value'",
            (DAG_ID, run_id),
        ).fetchall()
    reply: dict[str, Any] = json.loads(replies[0][0]) if replies else {}
    out = []
    for task, state in rows:
        note = f'reply from {reply["from"]}: "{reply["text"]}"' if task == "approval" and reply else ""
        if task == "approval" and state == "failed":
            found = re.search(r"rejected by SMS: [^\n]*?replied '[^']*'", log)
            note = found.group(0) if found else ""
        out.append((f"{task:<9} {state or 'none':<16}", note))
    return out


def _outbox(sandbox: Path, phone: str) -> list[str]:
    with sqlite3.connect(sandbox) as conn:
        return [b for (b,) in conn.execute("SELECT body FROM messages WHERE phone = ? ORDER BY accepted_at", (phone,))]


def main() -> int:
    """Run the demo; exit 0 when both runs end as expected."""
    import airflow

    print(f"smsrelay-airflow demo: approval by SMS on Apache Airflow {airflow.__version__}, against the sandbox")
    base = Path(tempfile.mkdtemp(prefix="smsrelay-airflow-demo-"))
    home, dags, sandbox, log = base / "airflow", base / "dags", base / "sandbox.db", base / "airflow.log"
    dags.mkdir(parents=True)
    shutil.copy(EXAMPLES / f"{DAG_ID}.py", dags)
    env = _env(home, dags, sandbox)
    with log.open("w") as out:
        t0 = time.monotonic()
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        if migrate.returncode:
            print(f"airflow db migrate failed; see {log}")
            return 1
        print(f"  AIRFLOW_HOME={home} (SQLite, db migrate took {time.monotonic() - t0:.1f} s)")
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, *[a for a, _, _ in RUNS]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        out.write(proc.stdout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SMSRELAY-DEMO-RESULT ")]
    if not lines:
        print(f"the DAG runs did not finish; see {log}")
        return 1
    results = json.loads(lines[-1].split(" ", 1)[1])
    print(f"  two DAG runs with dag.test() took {time.monotonic() - t0:.1f} s (triggers run inline)")
    ok = True
    for result, (approver, behaviour, expected) in zip(results, RUNS, strict=True):
        print(f"\nrun {result['run_id']}: approver {approver} ({behaviour} in the sandbox)")
        for head, note in _tasks(home / "airflow.db", result["run_id"], proc.stdout):
            print(f"  {head}{note}".rstrip())
        for body in _outbox(sandbox, approver):
            print(f"  SMS -> {approver}: {body}")
        verdict = "as expected" if result["state"] == expected else f"UNEXPECTED, wanted {expected}"
        print(f"  DAG run: {result['state']} ({verdict})")
        ok = ok and result["state"] == expected
    print(f"\nfull Airflow log: {log}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
