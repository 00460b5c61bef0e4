"""The Airflow hook and the shared rate limit: a connection's extra ``rate_limit_store`` makes every
worker on one account take turns from one bucket in PostgreSQL.

Two worker processes each build an ``SmsHook`` from the same ``AIRFLOW_CONN_*`` and send
at once to one Kudosity V2 emulator; the emulator's record of arrivals is counted per
second. Counting only: no duration is asserted.
"""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import timedelta

import pytest

pytest.importorskip("airflow")
pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

from airflow.sdk import Connection  # noqa: E402
from smsrelay_airflow.connections import BACKENDS, conn_fields  # noqa: E402
from smsrelay_airflow.hooks.sms import SmsHook  # noqa: E402

from smsrelay import SharedRateLimiter  # noqa: E402
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator  # noqa: E402
from tests.fixtures.airflow import airflow_env  # noqa: E402
from tests.fixtures.kudosity import SENDER, V2_KEY  # noqa: E402
from tests.unit.test_shared_limit import most_in_any_window, run_gated  # noqa: E402

RATE, PER_WORKER = 20, 20

WORKER = textwrap.dedent(
    """
    import json, sys
    import psycopg
    from smsrelay_airflow.hooks.sms import SmsHook

    dsn, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hook = SmsHook("sms_shared")
    hook.client  # built (connection read) before the gate opens
    with psycopg.connect(dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock_shared(4242)")
    numbers = [f"+6149157{first + i:04d}" for i in range(count)]
    result = hook.send(numbers, "Your order has shipped.", key=f"shard-{first}")
    print(json.dumps({"accepted": len(result.message_ids), "requests": hook.client.provider.transport.requests_made}))
    """
)


def kudosity_conn(emu_url: str, store: str) -> Connection:
    return Connection(
        conn_id="sms_shared",
        conn_type="smsrelay_kudosity",
        host=emu_url,
        password=V2_KEY,
        extra=json.dumps({"sender": SENDER, "rate_limit": RATE, "rate_limit_store": store}),
    )


def test_the_extra_gives_the_hook_a_shared_limiter_and_its_password_stays_hidden(postgres_url: str) -> None:
    store = postgres_url.replace("smsrelay@", "smsrelay:hook-pw-123@")
    hook = SmsHook(connection=kudosity_conn("http://127.0.0.1:9", store), mask_secrets=False)
    limiter = hook.client.provider.limiter

    assert isinstance(limiter, SharedRateLimiter) and limiter.rate == RATE
    assert "hook-pw-123" not in repr(hook.settings) and "hook-pw-123" not in repr(limiter)
    # The connection form shows the field as a password, on every HTTP backend.
    for conn_type in ("smsrelay_kudosity", "smsrelay_smskit", "smsrelay_mesms", "smsrelay_kaleyra"):
        assert conn_fields(BACKENDS[conn_type])["rate_limit_store"]["schema"]["format"] == "password"
    hook.close()


def test_two_workers_on_one_connection_keep_the_accounts_rate_together(postgres_url: str, tmp_path) -> None:
    with KudosityV2Emulator(api_keys=(V2_KEY,)) as emu:
        env = airflow_env(tmp_path, tmp_path)
        env["AIRFLOW_CONN_SMS_SHARED"] = kudosity_conn(emu.url, postgres_url).as_json()
        cmds = [[sys.executable, "-c", WORKER, postgres_url, str(first), str(PER_WORKER)] for first in (0, 1000)]
        outs = [json.loads(o.strip().splitlines()[-1]) for o in run_gated(postgres_url, cmds, env=env)]
        sends = emu.received("POST", "/v2/sms")

    assert [o["accepted"] for o in outs] == [PER_WORKER, PER_WORKER]
    recipients = [r.json()["recipient"] for r in sends]
    assert len(recipients) == len(set(recipients)) == 2 * PER_WORKER  # each once
    # Alone, each worker would send at RATE; together they stay within RATE in any second.
    assert most_in_any_window([r.received_at for r in sends], timedelta(seconds=1)) <= RATE
