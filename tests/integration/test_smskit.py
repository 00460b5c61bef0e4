"""The SMSKit adapter against its emulator over loopback HTTP."""

from __future__ import annotations

import json
import logging

import pytest

from smsrelay import (
    AuthError,
    Client,
    InvalidRequest,
    Message,
    NotFound,
    OptOut,
    RateLimited,
    Reply,
    Status,
    Unsupported,
)
from smsrelay.emulators.smskit import SmsKitEmulator
from smsrelay.transport import HEADROOM
from tests.fixtures.smskit import SMSKIT_WEBHOOK_SECRET, wait_for

DELIVERED = "+254712345678"


def _one(client: Client, to: str = DELIVERED, body: str = "Your code is 123456", **kw):
    result = client.send(to, body, **kw)
    assert len(result.results) == 1
    return result.results[0]


def test_send_posts_the_documented_body_and_returns_the_job_id(smskit_client, smskit_emulator):
    r = _one(smskit_client, key="order-1")
    assert r.status is Status.QUEUED
    assert r.message_id and r.message_id.startswith("job_") and len(r.message_id) == 24
    [req] = smskit_emulator.received("POST", "/api/sms/send")
    assert req.header("X-Api-Key") == "sk_test_key"
    body = req.json()
    # The "+" is always sent: SMSKit reads a number without it as Kenyan.
    assert body["recipient"] == DELIVERED
    assert body["message"] == "Your code is 123456"
    assert body["idempotencyKey"] == r.key and r.key


@pytest.mark.parametrize(
    ("to", "raw", "status", "reason"),
    [
        ("+254712345678", "Delivered", Status.DELIVERED, None),
        ("+254712340001", "Failed", Status.FAILED, "Handset unreachable"),
        ("+254712340002", "DeadLetter", Status.FAILED, "dead_letter: Retries exhausted"),
        ("+254712340003", "Failed", Status.FAILED, "Carrier refused the message"),
        ("+254712340008", "Sent", Status.SENT, None),
    ],
)
def test_each_status_path(smskit_client, smskit_emulator, to, raw, status, reason):
    r = _one(smskit_client, to=to)
    assert smskit_client.status(r.message_id)[r.message_id].raw_status == "Pending"
    smskit_emulator.advance(1)
    report = smskit_client.status(r.message_id)[r.message_id]
    assert (report.raw_status, report.status) == ("Assigned", Status.QUEUED)
    smskit_emulator.advance(30)
    report = smskit_client.status([r.message_id])[r.message_id]
    assert (report.raw_status, report.status, report.reason) == (raw, status, reason)
    assert report.phone == to
    if status is Status.DELIVERED:
        assert report.occurred_at.isoformat() == report.raw["deliveredAt"].replace("Z", "+00:00")


def test_status_polling_warns_once_that_it_spends_the_budget(smskit_client, caplog):
    r = _one(smskit_client)
    with caplog.at_level(logging.WARNING, logger="smsrelay.providers.smskit"):
        smskit_client.status(r.message_id)
        smskit_client.status(r.message_id)
    warnings = [rec.message for rec in caplog.records if "100 requests/hour" in rec.message]
    assert len(warnings) == 1 and "webhook" in warnings[0]


def test_resend_with_the_same_key_lands_once(smskit_client, smskit_emulator):
    first = _one(smskit_client, key="campaign-7")
    again = _one(smskit_client, key="campaign-7")
    assert again.message_id == first.message_id
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 2
    assert smskit_emulator.state()["jobs"] == 1


def test_reset_after_accept_is_retried_and_exactly_one_message_lands(smskit_client, smskit_emulator):
    smskit_emulator.inject("reset_after", path="/api/sms/send")
    r = _one(smskit_client)
    assert r.status is Status.QUEUED and r.message_id
    sends = smskit_emulator.received("POST", "/api/sms/send")
    assert len(sends) == 2  # accepted, connection reset, repeated with the same key
    assert sends[0].json()["idempotencyKey"] == sends[1].json()["idempotencyKey"]
    assert smskit_emulator.state()["jobs"] == 1
    assert list(smskit_emulator.jobs) == [r.message_id]


def test_5xx_on_send_is_retried_safely(smskit_client, smskit_emulator):
    smskit_emulator.inject("status", status=503, path="/api/sms/send", times=2)
    r = _one(smskit_client)
    assert r.status is Status.QUEUED
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 3
    assert smskit_emulator.state()["jobs"] == 1


def test_429_is_honoured_with_retry_after_and_the_send_goes_through(smskit_client_factory, smskit_emulator, clock):
    smskit_emulator.rate_limit, smskit_emulator.rate_window = 2, 60.0
    client = smskit_client_factory()
    started = clock.now()
    result = client.send(["+254712345678", "+254712345679", "+254712345670"], "Hi")
    assert result.all_accepted
    codes = [r for r in smskit_emulator.received("POST", "/api/sms/send")]
    assert len(codes) == 4  # the third was refused once, then sent after Retry-After
    # The client waited the 60 s the provider asked for (on the manual clock).
    assert (clock.now() - started).total_seconds() >= 60
    assert smskit_emulator.state()["jobs"] == 3


def test_429_beyond_the_wait_cap_is_a_clear_rate_limited_error(smskit_client_factory, smskit_emulator):
    smskit_emulator.rate_limit = 1
    client = smskit_client_factory()
    assert _one(client).accepted
    with pytest.raises(RateLimited) as err:
        client.provider.devices()
    assert err.value.retry_after is not None and err.value.retry_after.total_seconds() > 3000
    assert "100 requests/hour" in str(err.value) and "sk_test_key" not in str(err.value)


def test_client_keeps_to_the_hourly_budget_without_hitting_429(smskit_client_factory, smskit_emulator, clock):
    smskit_emulator.rate_limit = 2
    client = smskit_client_factory(rate_limit=2 / 3600, concurrency=1)
    started = clock.now()
    result = client.send(["+254712345678", "+254712345679", "+254712345670"], "Hi")
    assert result.all_accepted
    # Two go at once; the third waits for the hour's window (plus the headroom) to free a slot.
    assert (clock.now() - started).total_seconds() == 3600 * (1 + HEADROOM)
    assert len(smskit_emulator.received("POST", "/api/sms/send")) == 3  # no 429 on the way
    assert smskit_emulator.state()["jobs"] == 3


@pytest.mark.parametrize(
    ("kw", "error", "needle"),
    [
        ({"api_key": "sk_wrong"}, AuthError, "missing or wrong"),
        ({"api_key": "sk_test_suspended"}, AuthError, "suspended"),
    ],
)
def test_401_is_an_auth_error_and_nothing_is_sent(smskit_client_factory, smskit_emulator, kw, error, needle):
    client = smskit_client_factory(**kw)
    with pytest.raises(error) as err:
        client.send(["+254712345678", "+254712345679"], "Hi")
    assert needle in str(err.value) and err.value.status_code == 401
    assert kw["api_key"] not in str(err.value) and kw["api_key"] not in repr(err.value)
    assert smskit_emulator.state()["jobs"] == 0


def test_400_names_the_field(smskit_client, smskit_emulator):
    # Bypass the client's own checks to see the provider's answer mapped.
    from smsrelay.model import PreparedSms

    sms = PreparedSms(to="+1", body="hi", key="k1", encoding="GSM-7", parts=1, message=Message("hi"))
    with pytest.raises(InvalidRequest) as err:
        smskit_client.provider.send([sms])
    assert err.value.field == "recipient" and err.value.status_code == 400
    assert "recipient" in str(err.value)


def test_priority_out_of_range_is_refused_before_sending(smskit_client, smskit_emulator):
    result = smskit_client.send("+254712345678", Message("OTP 1234", priority=11))
    assert result.results[0].status is Status.REJECTED
    assert "priority must be a whole number from 0 to 10" in (result.results[0].error or "")
    assert smskit_emulator.received("POST", "/api/sms/send") == []


def test_priority_and_device_targeting_go_on_the_wire(smskit_client, smskit_emulator):
    msg = Message("OTP 1234", priority=9, options={"devices": "dvc_3K7J2H5F8M1N4Q9R6V0W:0"})
    assert _one(smskit_client, body=msg).accepted
    body = smskit_emulator.received("POST", "/api/sms/send")[0].json()
    assert body["priority"] == 9
    assert body["devices"] == [{"deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W", "simSlot": 0}]
    smskit_emulator.advance(1)
    job = smskit_emulator.jobs[next(iter(smskit_emulator.jobs))]
    assert (job["deviceId"], job["simSlot"]) == ("dvc_3K7J2H5F8M1N4Q9R6V0W", 0)


def test_403_foreign_device_stops_the_batch(smskit_client, smskit_emulator):
    msg = Message("Hi", options={"devices": ["dvc_0THERACC0UNT0000000"]})
    with pytest.raises(AuthError) as err:
        smskit_client.send(["+254712345678", "+254712345679"], msg)
    assert err.value.status_code == 403 and "another account" in str(err.value)
    assert smskit_emulator.state()["jobs"] == 0


def test_422_no_eligible_device_is_per_recipient_and_clear(smskit_client, smskit_emulator):
    smskit_emulator.set_device("dvc_3K7J2H5F8M1N4Q9R6V0W", status="Offline")
    result = smskit_client.send("+254712345678", "Hi")
    r = result.results[0]
    assert r.status is Status.REJECTED and "no eligible phone or SIM" in (r.error or "")
    # Targeting only the disabled SIM is refused the same way.
    smskit_emulator.set_device("dvc_3K7J2H5F8M1N4Q9R6V0W", status="Online")
    result = smskit_client.send("+254712345678", Message("Hi", options={"devices": "dvc_3K7J2H5F8M1N4Q9R6V0W:1"}))
    assert result.results[0].status is Status.REJECTED
    assert smskit_emulator.state()["jobs"] == 0


def test_404_unknown_job_names_the_id(smskit_client):
    with pytest.raises(NotFound) as err:
        smskit_client.status("job_NOPE")
    assert "job_NOPE" in str(err.value)


def test_invalid_recipient_does_not_stop_the_batch(smskit_client, smskit_emulator):
    result = smskit_client.send(["+254712345678", "not-a-number", "+254712345679"], "Hi")
    assert [r.status for r in result.results] == [Status.QUEUED, Status.REJECTED, Status.QUEUED]
    assert smskit_emulator.state()["jobs"] == 2


def test_send_many_says_up_front_how_long_the_batch_takes(smskit_client, smskit_emulator, caplog):
    # 100 requests fit in the first hour's budget; each further 100 waits another hour.
    assert smskit_client.estimate(100).total_seconds() == 0
    assert smskit_client.estimate(400).total_seconds() == 3 * 3600 * (1 + HEADROOM)
    assert smskit_client.preview("Hi", ["+254712345678"] * 2).estimated_duration.total_seconds() == 0
    with caplog.at_level(logging.WARNING, logger="smsrelay.client"):
        smskit_client.send(["+254712345678"], "Hi")
    assert not [r for r in caplog.records if "will take about" in r.message]
    numbers = [f"+2547123{i:05d}" for i in range(150)]
    with caplog.at_level(logging.WARNING, logger="smsrelay.client"):
        result = smskit_client.send(numbers, "Hi")
        warned = [r.message for r in caplog.records if "will take about" in r.message]
    assert warned == ["smskit: 150 messages at the provider's rate limit will take about 1:01:12"]
    assert result.all_accepted and smskit_emulator.state()["jobs"] == 151


def test_dry_run_sends_nothing(smskit_client, smskit_emulator):
    result = smskit_client.send(["+254712345678", "+254712345679"], "Hi {{ x }}", vars={"x": 1}, dry_run=True)
    assert result.dry_run and result.all_accepted
    assert smskit_emulator.received() == []


def test_devices_lists_the_accounts_phones(smskit_client):
    devices = smskit_client.provider.devices()
    assert [d["deviceId"] for d in devices] == ["dvc_3K7J2H5F8M1N4Q9R6V0W", "dvc_9Q2W4E6R8T0Y1U3I5O7P"]
    assert devices[0]["sims"][0]["carrierName"] == "Safaricom"


# -- webhooks -----------------------------------------------------------------------------


def test_webhook_register_list_get_ping(smskit_client, smskit_emulator, smskit_receiver):
    provider = smskit_client.provider
    url = smskit_receiver.url + "/hooks/smskit"
    hook = provider.register_webhook(url, events=["sms:delivered", "sms:received"])
    assert hook.id.startswith("whk_") and hook.events == ("sms:delivered", "sms:received")
    sent = smskit_emulator.received("POST", "/api/webhooks")[0].json()
    assert sent["secret"] == SMSKIT_WEBHOOK_SECRET
    assert [h.id for h in provider.list_webhooks()] == [hook.id]
    assert provider.get_webhook(hook.id).url == url
    assert SMSKIT_WEBHOOK_SECRET not in repr(hook) and SMSKIT_WEBHOOK_SECRET not in json.dumps(dict(hook.raw))
    assert provider.ping_webhook(hook.id).startswith("evt_")
    wait_for(lambda: smskit_emulator.pushes and smskit_emulator.pushes[-1].delivered)
    assert smskit_receiver.events == {}  # a ping carries no event
    with pytest.raises(Unsupported, match="dashboard"):
        provider.delete_webhook(hook.id)


def test_register_without_a_secret_is_a_config_error(smskit_client_factory, smskit_emulator):
    from smsrelay import ConfigError

    client = smskit_client_factory(webhook_secret=None)
    with pytest.raises(ConfigError) as err:
        client.provider.register_webhook("https://example.com/hook")
    assert err.value.field == "webhook_secret"
    assert smskit_emulator.received() == []


def test_pushed_lifecycle_and_reply_reach_the_receiver_verified_and_deduped(
    smskit_client, smskit_emulator, smskit_receiver
):
    smskit_client.provider.register_webhook(smskit_receiver.url + "/hooks/smskit")
    r = _one(smskit_client, to="+254712340009")  # delivered, then a late duplicate sms:sent
    smskit_emulator.advance(30)
    wait_for(lambda: len(smskit_emulator.pushes) == 3 and all(p.delivered for p in smskit_emulator.pushes))
    assert smskit_receiver.refused == []
    events = list(smskit_receiver.events.values())
    assert sorted(e.status.value for e in events) == ["delivered", "sent"]  # the duplicate deduped
    from smsrelay.lifecycle import merge_all

    merged = merge_all(e for e in [*events, events[0]])
    assert merged[r.message_id].status is Status.DELIVERED


def test_stop_reply_is_pushed_as_reply_and_opt_out_and_later_sends_fail(
    smskit_client, smskit_emulator, smskit_receiver
):
    smskit_client.provider.register_webhook(smskit_receiver.url + "/hooks/smskit", events=["sms:received"])
    _one(smskit_client, to="+254712340007")
    smskit_emulator.advance(30)
    wait_for(lambda: len(smskit_receiver.events) == 2)
    kinds = sorted(type(e).__name__ for e in smskit_receiver.events.values())
    assert kinds == ["OptOut", "Reply"]
    reply = next(e for e in smskit_receiver.events.values() if isinstance(e, Reply))
    assert (reply.phone, reply.text, reply.to) == ("+254712340007", "STOP", "+254700000000")
    later = _one(smskit_client, to="+254712340007", body="Another offer")
    smskit_emulator.advance(30)
    report = smskit_client.status(later.message_id)[later.message_id]
    assert report.status is Status.FAILED and report.reason == "Recipient opted out"


def test_a_forged_push_is_refused_401(smskit_client_factory, smskit_emulator, start_emulator, clock):
    from tests.fixtures.smskit import HookReceiver

    honest = smskit_client_factory()
    wrong = smskit_client_factory(webhook_secret="another-secret-0123")
    receiver = start_emulator(HookReceiver, provider=wrong.provider)
    honest.provider.register_webhook(receiver.url + "/hooks/smskit")
    smskit_emulator.inbound("+254712345678", "YES")
    wait_for(lambda: receiver.refused)
    assert receiver.refused[0] == 401 and receiver.events == {}


# -- inbound polling -----------------------------------------------------------------------


def test_poll_replies_with_a_cursor_that_resumes_exactly(smskit_client, smskit_emulator):
    for i in range(5):
        smskit_emulator.inbound(f"+25471234500{i}", f"reply {i}")
    page = smskit_client.events(limit=2)
    assert [e.text for e in page] == ["reply 0", "reply 1"] and page.more
    # A new client (a restart) resumes after the cursor: no replay, no skip.
    page = smskit_client.events(since=page.cursor, limit=2)
    assert [e.text for e in page] == ["reply 2", "reply 3"]
    page = smskit_client.events(since=page.cursor)
    assert [e.text for e in page] == ["reply 4"] and not page.more
    empty = smskit_client.events(since=page.cursor)
    assert list(empty) == [] and empty.cursor == page.cursor
    smskit_emulator.inbound("+254712345678", "STOP")
    page = smskit_client.events(since=empty.cursor)
    assert [type(e) for e in page] == [Reply, OptOut]
    assert page.events[0].phone == "+254712345678"


def test_polled_and_pushed_reply_share_the_event_id(smskit_client, smskit_emulator, smskit_receiver):
    smskit_client.provider.register_webhook(smskit_receiver.url + "/hooks/smskit", events=["sms:received"])
    smskit_emulator.inbound("+254712345678", "YES")
    wait_for(lambda: smskit_receiver.events)
    [polled] = list(smskit_client.events())
    assert set(smskit_receiver.events) == {polled.event_id}


def test_control_api_injects_a_reply_and_sets_the_rate_limit(smskit_emulator):
    import requests

    r = requests.post(smskit_emulator.url + "/_emulator/inbound", json={"from": "+254712345678", "content": "YES"})
    assert r.status_code == 201 and r.json()["event"] == "sms:received"
    r = requests.post(smskit_emulator.url + "/_emulator/rate_limit", json={"limit": None})
    assert r.json()["limit"] is None and smskit_emulator.rate_limit is None
    assert isinstance(smskit_emulator, SmsKitEmulator) and smskit_emulator.state()["inbox"] == 1


def test_an_endpoint_that_keeps_failing_is_suspended(smskit_client, smskit_emulator, start_emulator):
    import socket

    with socket.socket() as s:  # a port with nobody listening: every push fails
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hooks/smskit"
    smskit_emulator.suspend_after, smskit_emulator.push_attempts = 2, 1
    hook = smskit_client.provider.register_webhook(dead, events=["sms:received"])
    smskit_emulator.inbound("+254712345678", "one")
    smskit_emulator.inbound("+254712345678", "two")
    wait_for(lambda: smskit_client.provider.get_webhook(hook.id).raw["isActive"] is False)
    smskit_emulator.inbound("+254712345678", "three")
    assert len(smskit_emulator.pushes) == 2  # a suspended endpoint gets nothing more


def test_when_every_retry_is_reset_the_send_is_ambiguous_and_resending_the_key_is_safe(smskit_client, smskit_emulator):
    from smsrelay import AmbiguousSend

    smskit_emulator.inject("reset_after", path="/api/sms/send", times=10)
    with pytest.raises(AmbiguousSend) as err:
        smskit_client.send("+254712345678", "Hi", key="deploy-42")
    assert len(err.value.keys) == 1
    smskit_emulator.faults.clear()
    again = _one(smskit_client, key="deploy-42", body="Hi")
    assert smskit_emulator.state()["jobs"] == 1 and list(smskit_emulator.jobs) == [again.message_id]


def test_default_targeting_from_a_yaml_list(smskit_emulator, clock, tmp_path):
    path = tmp_path / "smskit.yaml"
    path.write_text(
        "provider: smskit\n"
        "smskit:\n"
        "  api_key: sk_test_key\n"
        f"  base_url: {smskit_emulator.url}\n"
        "  priority: 9\n"
        "  devices: [dvc_3K7J2H5F8M1N4Q9R6V0W]\n"
    )
    with Client(config_file=str(path), clock=clock, env={}) as client:
        assert _one(client).accepted
    body = smskit_emulator.received("POST", "/api/sms/send")[0].json()
    assert body["devices"] == [{"deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W"}] and body["priority"] == 9


def test_status_quotes_the_id_and_reads_odd_answers_clearly(smskit_client, smskit_emulator):
    from smsrelay import ProviderServerError

    with pytest.raises(NotFound):
        smskit_client.status("job_A/../../api/devices")
    assert smskit_emulator.received("GET", "/api/devices") == []
    job = "job_FUTURESTATUS0000000"
    path = f"/api/sms/{job}/status"
    body = json.dumps({"jobId": job, "status": "Throttled"})
    smskit_emulator.inject("status", status=200, body=body, path=path)
    report = smskit_client.status(job)[job]
    assert (report.status, report.raw_status) == (Status.QUEUED, "Throttled")  # never a false final
    smskit_emulator.inject("status", status=200, body="<html>maintenance</html>", path=path)
    with pytest.raises(ProviderServerError, match="unreadable status"):
        smskit_client.status(job)
