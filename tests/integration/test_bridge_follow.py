"""``sync --follow``: events pushed to the receiver reach Salesforce in batches, through the
bridge's own named inbox cursor, by size or by time, and never above the API ceiling."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from datetime import timedelta
from typing import Any

import requests
import yaml
from smsrelay_salesforce.follow import Follower
from smsrelay_salesforce.org import BudgetExceeded

from smsrelay import Delivery, LinkHit, Reply, Status
from smsrelay.config import ProviderSettings
from smsrelay.receiver import route_for
from tests.fixtures.bridge import bridge_mapping
from tests.fixtures.receiver import SANDBOX_TOKEN, sandbox_push

MSG = "SMS_Message__c"
# The sandbox sends at once and reports nothing by itself for a day: every report here is pushed.
QUIET = {"sent_after": 0.0, "delivered_after": 86_400.0, "reply_after": 86_400.0}


def _setup(make_bridge: Any, queue_messages: Any, sf_org: Any, tmp_path: pathlib.Path, n: int, **limits: Any):
    queue_messages(n)
    bridge = make_bridge(sms={**QUIET, "inbox": str(tmp_path / "inbox.db")}, limits=limits)
    assert bridge.sync(pull=False).sent == n
    rows = sf_org.records(MSG, "Direction__c = 'Outbound'")
    return bridge, {r["Provider_Message_Id__c"]: r for r in rows}


def _push(receiver: Any, *events: Any) -> None:
    resp = requests.post(
        receiver.url + "/webhooks/sandbox",
        data=sandbox_push(*events),
        headers={"X-Smsrelay-Token": SANDBOX_TOKEN},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text


def _delivered(mid: str, row: dict[str, Any], clock: Any) -> Delivery:
    return Delivery(f"dlr-{mid}", "sandbox", row["Phone_E164__c"], clock.now(), mid, status=Status.DELIVERED)


def _drain(follower: Follower) -> None:
    """Read the sandbox's own polled "queued"/"sent" reports, so what follows is only the pushes."""
    while follower.batch().events:
        pass


def _receiver(start_receiver: Any, bridge: Any, tmp_path: pathlib.Path) -> Any:
    settings = ProviderSettings("sandbox", webhook_secret=SANDBOX_TOKEN, options={"path": str(tmp_path / "sbx.db")})
    return start_receiver([route_for(settings)], bridge.client.inbox)


def test_pushed_reports_and_a_stop_are_written_and_the_named_cursor_is_committed(
    make_bridge, queue_messages, sf_org, clock, tmp_path, start_receiver
) -> None:
    bridge, sent = _setup(make_bridge, queue_messages, sf_org, tmp_path, 3)
    receiver = _receiver(start_receiver, bridge, tmp_path)
    mid, row = next(iter(sent.items()))
    stop = Reply("mo-1", "sandbox", row["Phone_E164__c"], clock.now(), None, text="STOP", in_reply_to=mid)
    hit = LinkHit("hit-1", "sandbox", row["Phone_E164__c"], clock.now(), mid, url="https://acme.example/a")
    _push(receiver, *(_delivered(m, r, clock) for m, r in sent.items()), stop, hit)
    follower = Follower(bridge)
    batch = follower.batch()
    assert batch.deliveries_updated == 3 and batch.replies == 1 and batch.opt_outs == 1 and not batch.failures
    assert batch.link_hits == 1 and sf_org.records("SMS_Link_Hit__c")[0]["Message__c"] == row["Id"]
    assert {r["Delivery_Status__c"] for r in sf_org.records(MSG, "Direction__c = 'Outbound'")} == {"Delivered"}
    assert [c["Phone__c"] for c in sf_org.records("SMS_Consent__c")] == [row["Phone_E164__c"]]
    # Committed: the same follower, and a restarted one on the same cursor, read nothing more.
    assert follower.batch().events == 0
    assert Follower(bridge).batch().events == 0
    # Another cursor is another reader: it sees every event again, and replaying changes nothing.
    again = Follower(bridge, cursor="audit").batch()
    assert again.events >= 5 and again.deliveries_updated == 0 and again.deliveries_unchanged == 3


def test_batches_close_by_size_then_by_time(make_bridge, queue_messages, sf_org, clock, tmp_path, start_receiver):
    bridge, sent = _setup(make_bridge, queue_messages, sf_org, tmp_path, 5, follow_batch=2, follow_wait=3)
    receiver = _receiver(start_receiver, bridge, tmp_path)
    follower = Follower(bridge)
    _drain(follower)
    _push(receiver, *(_delivered(m, r, clock) for m, r in sent.items()))
    started = clock.now()
    sizes = [follower.batch().deliveries_updated for _ in range(3)]
    assert sizes == [2, 2, 1]
    # The last batch was not full: it waited follow_wait (on the manual clock) for more.
    assert clock.now() - started >= timedelta(seconds=3)
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 5


def test_above_the_ceiling_it_pauses_without_writing_or_committing(
    make_bridge, queue_messages, sf_org, clock, tmp_path, start_receiver
) -> None:
    bridge, sent = _setup(make_bridge, queue_messages, sf_org, tmp_path, 2)
    receiver = _receiver(start_receiver, bridge, tmp_path)
    follower = Follower(bridge)
    _drain(follower)
    _push(receiver, *(_delivered(m, r, clock) for m, r in sent.items()))
    sf_org.set_api_usage(13_600, 15_000)  # 91%: above the default 90% ceiling
    bridge.org.rest("limits/")  # the bridge reads usage from Sforce-Limit-Info on every response
    try:
        follower.batch()
        raise AssertionError("expected the budget to pause the follower")
    except BudgetExceeded as exc:
        assert "ceiling 90%" in exc.message
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 0
    sf_org.set_api_usage(100, 15_000)
    bridge.org.rest("limits/")
    assert follower.batch().deliveries_updated == 2


def test_sync_follow_as_a_command_until_sigterm(sf_org, sf_tls, tmp_path, queue_messages, start_receiver, clock):
    queue_messages(1)
    data = bridge_mapping(sf_org, sf_tls.ca_path, tmp_path)
    data["sms"].update(QUIET, inbox=str(tmp_path / "inbox.db"))
    data["limits"] = {"follow_wait": 0.2}
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "SF_TEST_TOKEN": sf_org.issue_token()}
    cmd = [sys.executable, "-m", "smsrelay_salesforce.cli"]
    done = subprocess.run([*cmd, "sync", "--once", "--push-only", "-c", str(path)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    row = sf_org.records(MSG)[0]
    from smsrelay.inbox import open_inbox

    receiver = start_receiver(
        [route_for(ProviderSettings("sandbox", webhook_secret=SANDBOX_TOKEN))], open_inbox(str(tmp_path / "inbox.db"))
    )
    proc = subprocess.Popen(
        [*cmd, "sync", "--follow", "--json", "-c", str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the sandbox's own "sent" report, polled through the feed
        _push(receiver, _delivered(row["Provider_Message_Id__c"], row, clock))
        batch = json.loads(proc.stdout.readline())
        assert batch["deliveries_updated"] == 1 and batch["total_calls"] >= 1
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    assert code == 0
    assert sf_org.records(MSG)[0]["Delivery_Status__c"] == "Delivered"


def test_near_the_ceiling_a_flood_is_paced_to_last_the_day(
    make_bridge, queue_messages, sf_org, clock, tmp_path, start_receiver
) -> None:
    bridge, sent = _setup(make_bridge, queue_messages, sf_org, tmp_path, 12, follow_batch=1)
    receiver = _receiver(start_receiver, bridge, tmp_path)
    follower = Follower(bridge)
    _drain(follower)
    # 100 calls left under the 90% ceiling: a day's worth is one call every 864 s, with a
    # burst allowance of 10.
    sf_org.set_api_usage(13_400, 15_000)
    bridge.org.rest("limits/")
    _push(receiver, *(_delivered(m, r, clock) for m, r in sent.items()))
    started = clock.now()
    written = sum(follower.batch().deliveries_updated for _ in range(12))
    assert written == 12
    waited = (clock.now() - started).total_seconds()
    assert waited >= 864  # the burst went at once, then the rest were spaced
    assert sf_org.count(MSG, "Delivery_Status__c = 'Delivered'") == 12
