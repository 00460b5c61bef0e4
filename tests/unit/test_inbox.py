"""The inbox: one suite, run over SQLite and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from smsrelay import ManualClock
from smsrelay.errors import ConfigError, InvalidRequest
from smsrelay.inbox import open_inbox
from smsrelay.model import Delivery, OptOut, Reply, Status, event_id_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def delivery(mid: str, status: Status, at: float = 0.0, tag: str = "") -> Delivery:
    return Delivery(
        event_id_for("sandbox", "delivery", mid, status.value, tag),
        "sandbox",
        "+61491570156",
        T0 + timedelta(seconds=at),
        mid,
        raw={"id": mid, "status": status.value},
        status=status,
        raw_status=status.value.upper(),
    )


def reply(n: int, text: str = "YES") -> Reply:
    return Reply(f"r{n}", "sandbox", "+61491570156", T0 + timedelta(seconds=n), f"mo{n}", text=text)


def test_append_read_commit_dedupe(open_test_inbox):
    inbox = open_test_inbox()
    first = inbox.append([reply(1), reply(2), reply(1)])
    assert (first.added, first.duplicates) == (2, 1)
    again = inbox.append([reply(2), reply(3)])
    assert (again.added, again.duplicates) == (1, 1)
    assert inbox.count() == 3

    page = inbox.read("bridge", limit=2)
    assert [e.event_id for e in page] == ["r1", "r2"]
    assert page.more
    # Reading does not move the cursor: without a commit, the same page comes back.
    assert [e.event_id for e in inbox.read("bridge", limit=2)] == ["r1", "r2"]
    inbox.commit("bridge", page.position)
    rest = inbox.read("bridge")
    assert [e.event_id for e in rest] == ["r3"]
    assert not rest.more
    assert rest.events[0] == reply(3)


def test_readers_are_independent_and_cursors_never_move_back(open_test_inbox):
    inbox = open_test_inbox()
    inbox.append([reply(n) for n in range(1, 6)])
    a = inbox.read("airflow", limit=3)
    inbox.commit("airflow", a.position)
    assert len(inbox.read("salesforce")) == 5
    inbox.commit("airflow", 1)
    assert inbox.position("airflow") == a.position
    assert inbox.cursors() == {"airflow": a.position}
    with pytest.raises(InvalidRequest, match="beyond the end"):
        inbox.commit("airflow", 10_000)
    with pytest.raises(InvalidRequest, match="position"):
        inbox.commit("airflow", -1)
    with pytest.raises(InvalidRequest, match="cursor name"):
        inbox.read("bad name with spaces")
    with pytest.raises(InvalidRequest, match="limit"):
        inbox.read("airflow", limit=0)


def test_durable_across_reopen(open_test_inbox):
    inbox = open_test_inbox()
    inbox.append([reply(1), reply(2)], source=("poll:sandbox", "cursor-42"))
    inbox.commit("bridge", inbox.read("bridge", limit=1).position)
    inbox.close()
    again = open_test_inbox()
    assert again.source_cursor("poll:sandbox") == "cursor-42"
    assert again.source_cursor("poll:other") is None
    assert [e.event_id for e in again.read("bridge")] == ["r2"]
    assert again.append([reply(1)]).duplicates == 1


def test_late_sent_never_overwrites_delivered(open_test_inbox):
    inbox = open_test_inbox()
    inbox.append([delivery("m1", Status.QUEUED, 0), delivery("m1", Status.DELIVERED, 2)])
    late = inbox.append([delivery("m1", Status.SENT, 1)])
    assert (late.added, late.superseded) == (1, 1)
    assert [e.status for e in inbox.read("r")] == [Status.QUEUED, Status.DELIVERED]
    everything = inbox.read("r", include_superseded=True)
    assert [(e.event.status, e.superseded) for e in everything.entries] == [
        (Status.QUEUED, False),
        (Status.DELIVERED, False),
        (Status.SENT, True),
    ]
    # The position passes superseded events too, so a reader never re-reads them.
    assert inbox.read("r").position == everything.position
    # In order, every step is news.
    inbox.append([delivery("m2", Status.SENT, 1), delivery("m2", Status.DELIVERED, 2)])
    assert [e.status for e in inbox.read_after(everything.position)] == [Status.SENT, Status.DELIVERED]


def test_compaction_waits_for_every_cursor_and_still_dedupes(open_test_inbox):
    clock = ManualClock(T0)
    inbox = open_test_inbox(clock=clock, dedupe_window=timedelta(days=1))
    inbox.append([reply(n) for n in range(1, 11)])
    assert inbox.compact() == 0, "no reader has consumed anything yet"
    inbox.commit("a", 8)
    inbox.commit("b", 4)
    assert inbox.compact() == 4
    assert inbox.count() == 6
    assert [e.event_id for e in inbox.read("b")] == [f"r{n}" for n in range(5, 11)]
    # A provider redelivers an event that was compacted away: still a duplicate.
    assert inbox.append([reply(2)]).duplicates == 1
    inbox.drop_cursor("b")
    assert inbox.compact() == 4
    clock.advance(2 * 86400)
    inbox.compact()
    # Past the dedupe window the id is forgotten, as documented.
    assert inbox.append([reply(2)]).added == 1


def test_concurrent_appends_are_ordered_and_exactly_once(open_test_inbox):
    inbox = open_test_inbox()
    events = [reply(n) for n in range(400)]

    def worker(k: int) -> None:
        # Each thread appends an overlapping slice: every event is offered twice.
        for i in range(k * 50, k * 50 + 100):
            inbox.append([events[i % 400]])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    page = inbox.read("all", limit=1000)
    ids = [e.event_id for e in page]
    assert sorted(ids) == sorted(e.event_id for e in events)
    positions = [e.position for e in page.entries]
    assert positions == sorted(positions)


@pytest.mark.parametrize("group_commit", [True, False])
def test_append_async_from_an_event_loop_is_exactly_once(open_test_inbox, group_commit):
    inbox = open_test_inbox(group_commit=group_commit)
    events = [reply(n) for n in range(60)]

    async def flood() -> list[int]:
        # Every event is offered twice, concurrently, as a provider's redelivery would be.
        results = await asyncio.gather(*(inbox.append_async([e]) for e in events + events))
        return [r.added for r in results]

    added = asyncio.run(flood())
    assert sum(added) == 60
    assert sorted(e.event_id for e in inbox.read("all", limit=1000)) == sorted(e.event_id for e in events)


def test_append_async_raises_what_the_store_raised(open_test_inbox):
    inbox = open_test_inbox()
    with inbox.transaction() as execute:
        execute("DROP TABLE events", ())
    # The writer thread's error reaches the waiting coroutine (the receiver answers 503).
    with pytest.raises(Exception, match="events"):
        asyncio.run(asyncio.wait_for(inbox.append_async([reply(1)]), 30))


@pytest.mark.parametrize("seed", range(3))
def test_a_group_stores_what_one_event_at_a_time_stores(open_test_inbox, seed):
    # PostgreSQL commits a group in a few statements, not two per event: same outcome.
    rng = random.Random(seed)
    statuses = [Status.QUEUED, Status.SENT, Status.DELIVERED, Status.FAILED]
    pool = [delivery(f"m{rng.randrange(4)}", rng.choice(statuses), rng.randrange(5)) for _ in range(40)]
    pool += [reply(n) for n in range(10)]
    events = [rng.choice(pool) for _ in range(80)]  # duplicates within and across groups
    grouped, single = open_test_inbox(), open_test_inbox(group_commit=False)

    def log():
        return [(e.event.event_id, e.superseded) for e in grouped.read("all", 1000, include_superseded=True).entries]

    totals = [0, 0, 0]
    for start in range(0, len(events), 20):
        r = grouped.append(events[start : start + 20])
        totals = [totals[0] + r.added, totals[1] + r.duplicates, totals[2] + r.superseded]
    by_group = log()
    with grouped.transaction() as execute:  # start again, for the same events one at a time
        execute("DELETE FROM events", ())
        execute("DELETE FROM statuses", ())
    one = [single.append([e]) for e in events]
    assert totals == [sum(r.added for r in one), sum(r.duplicates for r in one), sum(r.superseded for r in one)]
    assert by_group == log()
    assert sum(s for _, s in by_group) > 0, "the sample exercises the merge rule"


def test_event_kinds_round_trip(open_test_inbox):
    inbox = open_test_inbox()
    opt = OptOut("o1", "sandbox", "+61491570156", T0, "m1", source="reply", text="STOP")
    d = delivery("m9", Status.FAILED, 3)
    inbox.append([opt, d])
    assert inbox.read("x").events == [opt, d]


def test_open_inbox_urls(tmp_path):
    with pytest.raises(ConfigError, match="unknown inbox URL scheme"):
        open_inbox("mysql://u:pw@host/db")
    with pytest.raises(ConfigError, match="sqlite:///path"):
        open_inbox("sqlite://x.db")
    inbox = open_inbox(f"sqlite:///{tmp_path}/a.db")
    assert inbox.path == f"{tmp_path}/a.db"
    inbox.close()


@pytest.mark.postgres
def test_postgres_repr_and_errors_hide_the_password(postgres_server):
    from smsrelay.inbox import PostgresInbox

    url = postgres_server.replace("smsrelay@", "smsrelay:hunter2pw@") + "/nonexistent_db"
    with pytest.raises(ConfigError) as err:
        PostgresInbox(url)
    assert "hunter2pw" not in str(err.value)


def test_watch_list_for_providers_polled_by_message_id(open_test_inbox):
    clock = ManualClock(T0)
    inbox = open_test_inbox(clock=clock, dedupe_window=timedelta(days=1))
    inbox.watch("kaleyra", {"m1": "+61491570156", "m2": None})
    clock.advance(1)
    inbox.watch("kaleyra", {"m3": "+61491570157", "m1": "+61491570156"})
    inbox.watch("other", {"x": None})
    assert inbox.watched("kaleyra") == {"m1": "+61491570156", "m2": None, "m3": "+61491570157"}
    inbox.unwatch("kaleyra", ["m1", "m2"])
    assert inbox.watched("kaleyra") == {"m3": "+61491570157"}
    # A message with no final report within the window stops being polled.
    clock.advance(2 * 86400)
    inbox.compact()
    assert inbox.watched("kaleyra") == {} and inbox.watched("other") == {}


@pytest.mark.postgres
def test_postgres_inbox_reconnects_after_its_connection_dies(postgres_url):
    import psycopg

    inbox = open_inbox(postgres_url)
    inbox.append([reply(1)])
    # The database drops every other session, as a restart or a failover would.
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    # Each thread's connection is dead now; every call reconnects once and succeeds.
    for n in range(2, 5):
        assert inbox.append([reply(n)]).added == 1
    assert inbox.count() == 4
    inbox.ping()
    inbox.close()


def test_each_event_keeps_the_account_it_came_in_for(open_test_inbox):
    # Two accounts of one provider: the account is stored with each event, on every write path.
    for group_commit in (True, False):
        inbox = open_test_inbox(group_commit=group_commit)
        with inbox.transaction() as execute:
            execute("DELETE FROM events", ())
        inbox.append([reply(1)], account="au")
        inbox.append([reply(2), reply(3)], source=("poll:sandbox@nz", "c1"), account="nz")
        asyncio.run(inbox.append_async([reply(4)], account="au"))
        inbox.append([reply(5)])
        # Pushed and polled, the same event is stored once, with the account it came with first.
        assert inbox.append([reply(1)], account="nz").duplicates == 1
        page = inbox.read_after(0)
        assert [(e.event.event_id, e.account) for e in page.entries] == [
            ("r1", "au"),
            ("r2", "nz"),
            ("r3", "nz"),
            ("r4", "au"),
            ("r5", None),
        ]
        assert inbox.source_cursor("poll:sandbox@nz") == "c1"


# The events table as inboxes created it before events named their account.
OLD_EVENTS_DDL = """CREATE TABLE events (
    seq {seq},
    event_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT,
    received_at {real} NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL)"""
OLD_WATCH_DDL = """CREATE TABLE watch (
    provider TEXT NOT NULL, message_id TEXT NOT NULL, phone TEXT, added_at {real} NOT NULL,
    PRIMARY KEY (provider, message_id))"""


def test_an_inbox_from_before_accounts_is_migrated_in_place(inbox_url, open_test_inbox):
    old = open_inbox(":memory:")
    old.append([reply(1)])
    with old.transaction() as execute:
        (data,) = execute("SELECT data FROM events", ()).fetchone()
    old.close()
    row = ("r1", "sandbox", "reply", "mo1", 1.0, 0, data)
    if inbox_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(inbox_url, autocommit=True) as conn:
            conn.execute(OLD_EVENTS_DDL.format(seq="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", real="FLOAT8"))
            conn.execute(OLD_WATCH_DDL.format(real="FLOAT8"))
            conn.execute("INSERT INTO watch VALUES ('kaleyra', 'm0', NULL, 1.0)")
            conn.execute(
                "INSERT INTO events (event_id, provider, kind, message_id, received_at, superseded, data)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                row,
            )
    else:
        import sqlite3

        with sqlite3.connect(inbox_url) as conn:
            conn.execute(OLD_EVENTS_DDL.format(seq="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL"))
            conn.execute(OLD_WATCH_DDL.format(real="REAL"))
            conn.execute("INSERT INTO watch VALUES ('kaleyra', 'm0', NULL, 1.0)")
            conn.execute("INSERT INTO events VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)", row)
        conn.close()
    inbox = open_test_inbox()
    open_test_inbox()  # a second opener finds the column there
    assert inbox.append([reply(1), reply(2)], account="au").duplicates == 1
    assert [(e.event.event_id, e.account) for e in inbox.read("bridge").entries] == [("r1", None), ("r2", "au")]
    # The watch list too: an old row belongs to no account until one claims it.
    inbox.watch("kaleyra", {"m1": None}, account="in")
    assert list(inbox.watched("kaleyra")) == ["m0", "m1"]
    assert list(inbox.watched("kaleyra", account="in")) == ["m1"]


def test_the_watch_list_keeps_each_accounts_sends(open_test_inbox):
    inbox = open_test_inbox()
    inbox.watch("kaleyra", {"a1": "+919876543210", "a2": None})  # the client, before the router says whose
    inbox.watch("kaleyra", {"b1": None}, account="in2")
    inbox.watch("kaleyra", {"a1": "+910000000000", "a2": None}, account="in")  # claimed; the phone stays
    inbox.watch("kaleyra", {"a1": None})  # a repeat without an account keeps the owner
    assert inbox.watched("kaleyra", account="in") == {"a1": "+919876543210", "a2": None}
    assert list(inbox.watched("kaleyra", account="in2")) == ["b1"]
    assert list(inbox.watched("kaleyra")) == ["a1", "a2", "b1"]


def test_close_waits_for_a_transaction_running_in_another_thread(tmp_path):
    # Closing an SQLite connection under another thread's query crashed the interpreter (a
    # cancelled Airflow trigger's read, still running in its worker thread, met the close).
    inbox = open_inbox(tmp_path / "inbox.db")
    inside, release, order = threading.Event(), threading.Event(), []

    def reader() -> None:
        with inbox.transaction() as execute:
            inside.set()
            release.wait(10)
            order.append(execute("SELECT count(*) FROM events", ()).fetchone()[0])

    thread = threading.Thread(target=reader)
    thread.start()
    assert inside.wait(10)
    closer = threading.Thread(target=lambda: (inbox.close(), order.append("closed")))
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and order == []  # close() waits for the open transaction
    release.set()
    thread.join(10)
    closer.join(10)
    assert order == [0, "closed"]
