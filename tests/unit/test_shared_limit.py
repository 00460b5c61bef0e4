"""The shared rate limit: one account's bucket in a real PostgreSQL, taken by several processes.

Every check counts turns per window on the database's clock, the schedule the limiter
keeps; none measures how long anything took.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import psycopg
import pytest

from smsrelay import Client, ConfigError, ManualClock, SharedRateLimiter, TransportError, load_settings
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.inbox import open_inbox
from smsrelay.journal import SendJournal
from smsrelay.transport import TurnMissed

pytestmark = pytest.mark.postgres

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

# A worker process: wait at the gate (an advisory lock the test holds), then take turns.
WORKER = textwrap.dedent(
    """
    import json, sys
    import psycopg
    from smsrelay import ManualClock, SharedRateLimiter

    dsn, account, rate, turns, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    with psycopg.connect(dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock_shared(4242)")
    if mode == "reserve":  # the schedule alone: the turns' times, no waiting
        limiter = SharedRateLimiter(dsn, account=account, rate=rate, clock=ManualClock())
        print(json.dumps([limiter.reserve().at.isoformat() for _ in range(turns)]))
    else:  # as the transport uses it: wait for the turn, then 'send' (a row stamped by the database)
        limiter = SharedRateLimiter(dsn, account=account, rate=rate)
        with psycopg.connect(dsn, autocommit=True) as db:
            if mode == "book":  # as a send with all its requests ready does
                limiter.book(turns)
            for _ in range(turns):
                limiter.acquire()
                db.execute("INSERT INTO sends (at, pid) VALUES (clock_timestamp(), pg_backend_pid())")
    """
)


def run_gated(dsn: str, commands: list[list[str]], env: dict[str, str] | None = None) -> list[str]:
    """Start each command behind one gate (advisory lock 4242 on ``dsn``), open it once all wait; their outputs.

    A worker waits with ``SELECT pg_advisory_lock_shared(4242)``, so they all start together.
    """
    workers = len(commands)
    with psycopg.connect(dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(4242)")
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
            for cmd in commands
        ]
        # Each waits for the gate on its own connection; open it once all of them are there.
        deadline = 1200  # polls of 50 ms: a worker importing Airflow on a busy machine takes seconds
        while deadline:
            waiting = gate.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted"
            ).fetchone()
            if (waiting and waiting[0] == workers) or any(p.poll() is not None for p in procs):
                break
            deadline -= 1
            gate.execute("SELECT pg_sleep(0.05)")
        gate.execute("SELECT pg_advisory_unlock(4242)")
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def run_workers(dsn: str, account: str, rate: float, turns: int, mode: str, workers: int = 2) -> list[str]:
    """``workers`` processes taking ``turns`` turns each from one bucket (``mode``: reserve or acquire)."""
    cmd = [sys.executable, "-c", WORKER, dsn, account, str(rate), str(turns), mode]
    return run_gated(dsn, [cmd] * workers)


def most_in_any_window(times: list[datetime], window: timedelta) -> int:
    """The largest number of ``times`` inside any half-open window of length ``window``."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def sends_at_the_rate(
    dsn: str, account: str, rate: float, turns: int, mode: str, workers: int
) -> list[tuple[datetime, int]]:
    """Workers' 'sends' (database time, process), checked against the schedule the limiter keeps."""
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE sends (at TIMESTAMPTZ NOT NULL, pid INTEGER)")
    # The first turn, taken here, marks where the schedule starts.
    limiter = SharedRateLimiter(dsn, account=account, rate=rate)
    start = limiter.reserve().at
    run_workers(dsn, account, rate, turns, mode, workers=workers)
    with psycopg.connect(dsn, autocommit=True) as db:
        rows = [(at, pid) for at, pid in db.execute("SELECT at, pid FROM sends ORDER BY at")]
    # Counted by the database's clock: by `start + k` turns' time, at most k sends had happened.
    interval = timedelta(seconds=limiter.interval)
    for k, (at, _) in enumerate(rows, start=1):
        assert at >= start + k * interval - timedelta(microseconds=2), f"send {k} came early"
    assert most_in_any_window([at for at, _ in rows], timedelta(seconds=1)) <= rate
    return rows


def test_two_processes_on_one_bucket_never_exceed_the_rate(postgres_url: str) -> None:
    rate, turns = 40.0, 150
    outs = run_workers(postgres_url, "kudosity:test", rate, turns, "reserve")
    per_process = [[datetime.fromisoformat(t) for t in json.loads(o)] for o in outs]
    times = sorted(t for turns_ in per_process for t in turns_)

    assert len(times) == len(set(times)) == 2 * turns  # every turn its own slot
    # At most `rate` turns in any second, and in any shorter window its share (+1 for its edge).
    assert most_in_any_window(times, timedelta(seconds=1)) <= rate
    assert most_in_any_window(times, timedelta(seconds=0.25)) <= rate / 4 + 1
    # Both processes took turns from the same schedule while the other did.
    first_end = min(max(p) for p in per_process)
    assert all(min(p) < first_end for p in per_process)


def test_turns_taken_and_waited_for_keep_the_rate_at_the_receiving_end(postgres_url: str) -> None:
    rate, turns = 30.0, 12
    sends = [at for at, _ in sends_at_the_rate(postgres_url, "kudosity:live", rate, turns, "acquire", workers=3)]

    assert len(sends) == 3 * turns


def test_an_idle_bucket_gives_its_burst_then_spaces_turns(postgres_url: str) -> None:
    limiter = SharedRateLimiter(postgres_url, account="smskit:b", rate=10, burst=3, headroom=0, clock=ManualClock())
    grants = [limiter.reserve() for _ in range(5)]

    assert [g.wait == 0 for g in grants[:3]] == [True, True, True]
    assert grants[3].at - grants[0].at >= timedelta(seconds=0.1) - timedelta(microseconds=2)
    assert grants[4].at - grants[3].at >= timedelta(seconds=0.1) - timedelta(microseconds=2)
    # Turns already queued count in the estimate of a send's duration.
    assert limiter.eta(10) >= 0.7 * 0.9


def test_accounts_have_their_own_buckets_and_the_key_is_not_stored(postgres_url: str) -> None:
    env = {"SMSRELAY_RATE_LIMIT_STORE": postgres_url}
    a = load_settings("kudosity", env={**env, "SMSRELAY_KUDOSITY_API_KEY": "key-aaaa-1111"})
    b = load_settings("kudosity", env={**env, "SMSRELAY_KUDOSITY_API_KEY": "key-bbbb-2222"})
    with Client(settings=a) as ca, Client(settings=b) as cb, Client(settings=a) as ca2:
        limiters = [c.provider.limiter for c in (ca, cb, ca2)]
        assert all(isinstance(lim, SharedRateLimiter) for lim in limiters)
        for lim in limiters:
            lim.acquire()  # type: ignore[union-attr]
    with psycopg.connect(postgres_url) as db:
        rows = [r[0] for r in db.execute("SELECT account FROM smsrelay_rate_limits ORDER BY account")]
    assert len(rows) == 2 and all(r.startswith("kudosity:") for r in rows)
    assert not any("key-" in r for r in rows)


def test_the_password_never_shows_and_an_unreachable_store_sends_nothing(postgres_server: str, tmp_path) -> None:
    url = postgres_server.replace("smsrelay@", "smsrelay:hunter2pw@").rsplit(":", 1)[0] + ":1/db"
    with KudosityV2Emulator() as emu:
        settings = load_settings(
            "kudosity",
            env={"SMSRELAY_KUDOSITY_API_KEY": "test-key", "SMSRELAY_RATE_LIMIT_STORE": url},
            sender="Acme",
            base_url=emu.url,
        )
        assert "hunter2pw" not in repr(settings) and "smsrelay:***@" in repr(settings)
        with Client(settings=settings) as client:
            assert "hunter2pw" not in repr(client.provider.limiter)
            with pytest.raises(TransportError) as caught:
                client.send("+61491570156", "Hello", key="store-down-1")
            assert "hunter2pw" not in str(caught.value) and "cannot be reached" in str(caught.value)
        journal = str(tmp_path / "journal.db")
        with Client(settings=settings, journal=journal) as client, pytest.raises(TransportError):
            client.send("+61491570156", "Hello", key="store-down-2")
        assert emu.received("POST", "/v2/sms") == []  # the store decides before anything is sent
    claims = SendJournal(open_inbox(journal))
    try:
        assert claims.in_flight("kudosity") == []  # nor is anything claimed: the next send sends it
    finally:
        claims.inbox.close()


def test_the_setting_must_be_a_postgresql_url_and_the_error_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("kudosity", env={"SMSRELAY_KUDOSITY_API_KEY": "k", "SMSRELAY_RATE_LIMIT_STORE": "redis://:pw@x"})
    assert caught.value.field == "SMSRELAY_RATE_LIMIT_STORE" and "pw@x" not in str(caught.value)


class StallingClock(ManualClock):
    """A manual clock whose first sleep overruns by ``stall`` seconds, as a CPU-starved thread's does."""

    def __init__(self, stall: float) -> None:
        super().__init__()
        self.stall = stall

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self.stall)
        self.stall = 0.0


def test_a_turn_reached_too_late_is_left_unused_and_a_new_one_taken(postgres_url: str) -> None:
    ahead = SharedRateLimiter(postgres_url, account="kudosity:late", rate=10, clock=ManualClock())
    first = ahead.reserve()  # someone else's turn, so ours is one interval away
    late = SharedRateLimiter(postgres_url, account="kudosity:late", rate=10, clock=StallingClock(0.3))
    on_time = SharedRateLimiter(postgres_url, account="kudosity:late", rate=10, clock=StallingClock(0.02))

    late.acquire()  # slept 0.3 s past its turn (more than 0.048 s): takes a second one
    after_late = ahead.reserve().at
    on_time.acquire()  # 0.02 s past: within the headroom, used
    after_on_time = ahead.reserve().at

    interval = timedelta(seconds=ahead.interval)
    # Turns after `first`: the late one's two, then ahead's, then on_time's one, then ahead's.
    assert round((after_late - first.at) / interval) == 3
    assert round((after_on_time - after_late) / interval) == 2


def test_a_request_that_leaves_too_long_after_its_turn_is_not_sent_on_it(postgres_url: str) -> None:
    clock = ManualClock()
    limiter = SharedRateLimiter(postgres_url, account="kudosity:depart", rate=10, clock=clock)
    limiter.acquire()
    clock.advance(0.04)  # preparing, a handshake: within the allowance (0.048 s at 10/s)
    limiter.departed()
    limiter.acquire()
    clock.advance(0.3)  # a new task process's first connection on a busy host
    with pytest.raises(TurnMissed):
        limiter.departed()
    limiter.departed()  # that turn is spent; nothing else to refuse


def test_booked_blocks_are_served_first_come_first_served_at_the_rate(postgres_url: str) -> None:
    """Two senders with all their requests ready (two shards): one sends all of its, then the other."""
    rate, turns = 40.0, 20
    rows = sends_at_the_rate(postgres_url, "kudosity:blocks", rate, turns, "book", workers=2)

    assert len(rows) == 2 * turns
    pids = [pid for _, pid in rows]
    assert pids == [pids[0]] * turns + [pids[-1]] * turns  # not interleaved: one block, then the other


def test_a_block_is_at_most_two_seconds_of_turns_and_a_late_booked_turn_is_skipped(postgres_url: str) -> None:
    clock = ManualClock()
    mine = SharedRateLimiter(postgres_url, account="kudosity:book", rate=10, clock=clock)
    other = SharedRateLimiter(postgres_url, account="kudosity:book", rate=10, clock=ManualClock())
    assert mine.max_block == 18  # 2 s at 10/s, 6% under
    mine.book(500)
    after = other.reserve()  # queued behind the whole block, not behind 500 turns
    assert round(after.wait / mine.interval) == 18

    assert mine.acquire() == 0.0  # the block's first turn is now
    mine.departed()
    clock.advance(3 * mine.interval + mine.late_after + 0.001)  # stalled past the next three turns
    mine.acquire()  # the late ones are left unused: it waits for the fifth
    assert len(mine._booked) == 18 - 5
    mine.close()
    assert len(mine._booked) == 0
