"""Scale-out on Airflow at the account's limit (issue 17 item 7): sharded sends on several
workers keep one Kudosity account's 15 calls a second together, through the shared rate
limit (``rate_limit_store``) in PostgreSQL.

What runs: real Airflow 3 (scheduler with the LocalExecutor at parallelism 4, api-server,
dag-processor) on a private SQLite metadata DB; the Kudosity V1 emulator as its own process
(``smsrelay emulate kudosity-v1 --latency 150ms --rate-limit documented``: 15 calls in any
second per account, 429 over it); and a throwaway PostgreSQL holding the shared bucket.
The DAG is the example campaign's send step: a task splits 200,000 recipients into 20
shards, and ``SendSmsOperator`` is mapped over them (``max_active_tis_per_dag=4``, retries
with a 1 s delay, ``return_results=False`` as the example has it). Each shard goes to XCom as
one comma-separated string, since every mapped task pulls the whole list. The workers'
``[workers] min_heartbeat_interval`` is 1 s, as docs/airflow.md advises for this. The body is
shared, so Kudosity V1 takes 500 numbers a request: the floor is 400 requests, 26.7 s at
15/s. (A personalised body is one request per recipient on V1: 200,000 requests, 3.7 hours
at 15/s.)

Two runs. The first measures 429s and wall time ÷ (requests ÷ 15 per s), both at the
emulator (first to last request) and end to end (the DAG run's start to end in Airflow's
metadata, including the task that builds the audience and every task's start-up). In the
second, the task process of one running shard is SIGKILLed once its shard has begun
sending; Airflow retries it, and the emulator's per-recipient record is counted for
duplicates and gaps. ``--smoke`` runs 2,000 recipients in 4 shards, without the kill.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.limits import emulator_process
from bench.report import Figure

BENCH = "airflow_scale"
FULL, SMOKE = (200_000, 20), (2_000, 4)
RATE = 15.0  # Kudosity's documented calls per second per account
KEY, SECRET, SENDER = "test-key", "test-secret", "61481074185"
DAG_ID = "bench_airflow_scale"
PARALLELISM = 4
# What would close the misses (the report lists it under each).
PACE = (
    "less headroom in SharedRateLimiter: it paces 6% under 15/s (1.064 at best), and a send books its ready "
    "requests' turns as one block, so shards end one after another and the account does not idle while the "
    "next ones start; a run above that is a turn reached late on two busy cores, or a shard starting slower "
    "than the others' booked turns run out"
)
PACE_E2E = (
    "not at this size: the shared limit paces 6% under 15/s (1.064 at best), and the audience task, the first "
    "shards' start-up and the last one's end lie outside the requests (about 7 s, a quarter of the minimum)"
)
RESUME = (
    "the send journal (SMSRELAY_JOURNAL) on every worker: without it, a retry on a backend that cannot be "
    "asked by key (Kudosity V1) sends again what the killed try had sent"
)

DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from smsrelay_airflow.operators.send import SendSmsOperator

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={{"recipients": Param(100, type="integer"), "shards": Param(2, type="integer"),
             "first_number": Param(61410000000, type="integer")}},
) as dag:

    @task
    def shards(params=None):
        n, first = params["shards"], params["first_number"]
        audience = [f"+{{first + i}}" for i in range(params["recipients"])]
        # Each shard one comma-separated string (a form `to` takes): every mapped task pulls the
        # whole list from XCom, and 20 strings parse far faster than 200,000 list items.
        return [",".join(audience[i::n]) for i in range(n)]

    SendSmsOperator.partial(
        task_id="send",
        message="Your order has shipped. Reply STOP to opt out.",
        retries=2,
        retry_delay=timedelta(seconds=1),
        max_active_tis_per_dag={parallelism},
        return_results=False,
    ).expand(to=shards())
"""


class Emulator:
    """The Kudosity V1 emulator's control API at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            f"{self.url}/_emulator/{path}", method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return dict(self.control("GET", "stats"))

    def sends_per_recipient(self) -> collections.Counter[str]:
        """How many times each number was sent to, from the emulator's own record."""
        return collections.Counter(row["to"] for row in self.control("GET", "messages?limit=10000000"))


def _airflow(where: Path, emu_url: str, store: str) -> Any:
    """A migrated Airflow home with only this bench's DAG, its services not yet started."""
    from tests.fixtures.airflow import AirflowHome, AirflowServices, airflow_env

    home, dags = where / "airflow", where / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG).format(dag_id=DAG_ID, parallelism=PARALLELISM))
    af = AirflowHome(home, dags, airflow_env(home, dags))
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=af.env, capture_output=True, text=True, timeout=600
    )
    if migrate.returncode:
        raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
    extra = {"api": "v1", "api_secret": SECRET, "sender": SENDER, "rate_limit_store": store}
    af.connection(
        "smsrelay_default", {"conn_type": "smsrelay_kudosity", "host": emu_url, "password": KEY, "extra": extra}
    )
    services = AirflowServices(af, components=("api-server", "dag-processor", "scheduler"))
    af.env["AIRFLOW__CORE__PARALLELISM"] = str(PARALLELISM)
    # As docs/airflow.md advises for shards at an account's limit: Airflow 3's task supervisor can
    # notice its task process's exit only at its next heartbeat (5 s by default), holding the
    # executor slot that long after the task ended (8 of 20 shards in one run).
    af.env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] = "1"
    return services


def _parse(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value.replace(" ", "T"))


def _trigger(services: Any, conf: dict[str, Any]) -> str:
    """Start a DAG run with ``conf``; its run id."""
    from tests.fixtures.airflow import wait_for

    wait_for("the DAG to be parsed", lambda: services.query("SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), timeout=300)
    before = {r.run_id for r in services.dag_runs(DAG_ID)}
    cmd = [sys.executable, "-m", "airflow", "dags", "trigger", DAG_ID, "--conf", json.dumps(conf)]
    proc = subprocess.run(cmd, env=services.af.env, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"airflow dags trigger failed: {proc.stderr[-2000:]}")
    runs = wait_for("the new DAG run", lambda: [r for r in services.dag_runs(DAG_ID) if r.run_id not in before])
    return str(runs[0].run_id)


def _finish(services: Any, run_id: str, timeout: float) -> tuple[str, float]:
    """Wait for the run to end; its state and its duration (start to end) in Airflow's metadata."""
    from tests.fixtures.airflow import wait_for

    def ended() -> Any:
        rows = services.query("SELECT state, start_date, end_date FROM dag_run WHERE run_id = ?", run_id)
        return rows if rows and rows[0][0] in ("success", "failed") else None

    try:
        state, start, end = wait_for(f"DAG run {run_id} to end", ended, timeout=timeout)[0]
    except AssertionError as exc:
        raise RuntimeError(f"{exc}\n{services.output()}") from None
    return str(state), (_parse(end) - _parse(start)).total_seconds()


def _task_process(ti_id: str) -> int | None:
    """The pid of a task instance's task process: Airflow titles it ``airflow worker -- <ti id>``."""
    import psutil  # type: ignore[import-untyped]

    wanted = ti_id.replace("-", "")  # the metadata DB stores the UUID without dashes, the title with them
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or ()).strip()
        # Its parent, the supervisor, is titled "airflow worker -- LocalExecutor: <ti id>": not that one.
        if title.startswith("airflow worker -- ") and title.split("-- ", 1)[1].replace("-", "") == wanted:
            return int(proc.pid)
    return None


def _kill_a_shard_mid_send(services: Any, emu: Emulator, run_id: str) -> dict[str, Any]:
    """SIGKILL the task process of a send task that has been running long enough to have sent some."""
    from tests.fixtures.airflow import wait_for

    sent_before = emu.stats()["requests"]

    def victim() -> Any:
        rows = services.query(
            "SELECT id, map_index, start_date FROM task_instance WHERE run_id = ? AND task_id = 'send' "
            "AND state = 'running' ORDER BY start_date",
            run_id,
        )
        if emu.stats()["requests"] < sent_before + 8:  # the shards are sending
            return None
        for ti_id, map_index, start in rows:
            # A shard of 10,000 takes about 5 s at a quarter of 15 calls a second: 2 s in, it is sending.
            if start and (datetime.now(_parse(start).tzinfo) - _parse(start)).total_seconds() > 2.5:
                pid = _task_process(str(ti_id))
                if pid:
                    return ti_id, map_index, pid
        return None

    _, map_index, pid = wait_for("a send task to be mid-shard", victim, timeout=300, every=0.2)
    os.kill(pid, signal.SIGKILL)
    return {"map_index": int(map_index), "pid": pid}


def _shard_numbers(first: int, recipients: int, shards: int, index: int) -> set[str]:
    return {f"+{first + i}" for i in range(index, recipients, shards)}


def run(smoke: bool) -> list[Figure]:
    if importlib.util.find_spec("airflow") is None:
        return [Figure(BENCH, "skipped: Apache Airflow is not installed", 0, "")]
    from tests.fixtures.postgres import create_database, temporary_postgres

    recipients, shards = SMOKE if smoke else FULL
    floor = shards * -(-(recipients // shards) // 500)
    where = Path(tempfile.mkdtemp(prefix="smsrelay-bench-airflow-"))
    try:
        with temporary_postgres() as server:
            store = create_database(server)
            with emulator_process("kudosity-v1", "--latency", "150ms", "--rate-limit", "documented") as url:
                emu = Emulator(url)
                services = _airflow(where, emu.url, store)
                services.start()
                try:
                    return _measure(services, emu, store, recipients, shards, floor, smoke)
                finally:
                    services.stop()
    except FileNotFoundError as exc:  # no PostgreSQL on this machine
        return [Figure(BENCH, f"skipped: {exc}", 0, "")]
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _measure(
    services: Any, emu: Emulator, journal: str, recipients: int, shards: int, floor: int, smoke: bool
) -> list[Figure]:
    timeout = 300 if smoke else 900
    size = f"{recipients:,} recipients in {shards} shards, parallelism {PARALLELISM}"
    # Run 1: the clean run.
    first = 61410000000
    run_id = _trigger(services, {"recipients": recipients, "shards": shards, "first_number": first})
    state, e2e = _finish(services, run_id, timeout)
    if state != "success":
        raise RuntimeError(f"the DAG run ended {state}\n{services.output()}")
    st = emu.stats()
    span = (_parse(st["last_request_at"]) - _parse(st["first_request_at"])).total_seconds()
    tasks = services.query(
        "SELECT start_date, end_date FROM task_instance WHERE run_id = ? AND task_id = 'send'", run_id
    )
    mean_task = sum((_parse(e) - _parse(b)).total_seconds() for b, e in tasks) / max(1, len(tasks))
    minimum = st["requests"] / RATE
    counts = emu.sends_per_recipient()
    how = f"{size}; Kudosity V1 emulator, 150 ms latency, 15 calls in any 1 s (429 over), shared body"
    figures = [
        Figure(
            BENCH,
            "429s received",
            st["rate_limited"],
            "",
            goal="0",
            met=st["rate_limited"] == 0,
            detail=how,
            closes="more headroom in SharedRateLimiter (6% absorbs a request 64 ms late; a busier host needs more)",
        ),
        Figure(
            BENCH,
            "requests",
            st["requests"],
            "",
            detail=f"floor {floor} (500 numbers a request); {len(counts):,} recipients reached",
        ),
        Figure(
            BENCH,
            "wall ÷ (requests ÷ 15/s), at the emulator",
            round(span / minimum, 3),
            "×",
            goal=None if smoke else "≤ 1.1",
            met=None if smoke else span / minimum <= 1.1,
            detail=f"first to last request {span:.1f} s; minimum {minimum:.1f} s; "
            f"a send task took {mean_task:.1f} s on average, start to end",
            closes=PACE,
        ),
        Figure(
            BENCH,
            "wall ÷ (requests ÷ 15/s), end to end",
            round(e2e / minimum, 3),
            "×",
            goal=None if smoke else "≤ 1.1",
            met=None if smoke else e2e / minimum <= 1.1,
            detail=f"DAG run start to end {e2e:.1f} s (audience task, task start-ups, XCom included)",
            closes=PACE_E2E,
        ),
    ]
    for f in figures:  # shown as measured: the second run takes minutes more
        print(f"# {f.name}: {f.value} {f.unit} ({f.detail})", file=sys.stderr, flush=True)
    if smoke:
        return figures
    # Run 2: one shard's task process is SIGKILLed mid-send; Airflow retries it. The workers keep
    # the send journal in the same PostgreSQL (a new scheduler, so its task processes see it).
    services.stop("scheduler")
    services.af.env["SMSRELAY_JOURNAL"] = journal
    services.start("scheduler")
    emu.control("POST", "reset")
    first = 61420000000
    run_id = _trigger(services, {"recipients": recipients, "shards": shards, "first_number": first})
    killed = _kill_a_shard_mid_send(services, emu, run_id)
    numbers = _shard_numbers(first, recipients, shards, killed["map_index"])
    at_kill = sum(1 for n in emu.sends_per_recipient() if n in numbers)
    state, e2e = _finish(services, run_id, timeout)
    st = emu.stats()
    counts = emu.sends_per_recipient()
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    missing = recipients - len(counts)
    unsent = len(numbers - set(counts))  # of the killed shard's recipients
    in_doubt = _in_flight(journal)  # claimed, no outcome: what the task fails naming
    tries = services.query(
        "SELECT try_number, state FROM task_instance WHERE run_id = ? AND task_id = 'send' AND map_index = ?",
        run_id,
        killed["map_index"],
    )
    kill = (
        f"shard {killed['map_index']} killed with {at_kill:,} of {len(numbers):,} sent; it ended {tries[0][1]} "
        f"on try {tries[0][0]}; run {state}, {st['rate_limited']} × 429; send journal in the same PostgreSQL"
    )
    figures += [
        Figure(
            BENCH,
            "duplicates after a SIGKILLed shard's retry",
            duplicates,
            "",
            goal="0",
            met=duplicates == 0,
            detail=kill,
            closes=RESUME,
        ),
        Figure(
            BENCH,
            "recipients left in doubt by the kill",
            in_doubt,
            "",
            detail=f"keys the journal holds claimed without an outcome: the requests in flight at the kill. "
            f"Kudosity V1 cannot be asked by key, so the retry sends none of them and fails naming them, for a "
            f"person to settle (smsrelay reconcile); of the killed shard {unsent:,} unsent, {missing:,} in the run",
        ),
    ]
    for f in figures[-2:]:
        print(f"# {f.name}: {f.value} {f.unit} ({f.detail})", file=sys.stderr, flush=True)
    return figures


def _in_flight(journal: str) -> int:
    """Keys the send journal holds claimed without an outcome."""
    import psycopg

    with psycopg.connect(journal) as db:
        row = db.execute("SELECT count(*) FROM sends WHERE state = 'pending'").fetchone()
    return int(row[0]) if row else 0


if __name__ == "__main__":
    for figure in run(smoke="--smoke" in sys.argv):
        print(figure)
    sys.exit(0)
