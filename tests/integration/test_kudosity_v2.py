"""The Kudosity V2 adapter against the V2 emulator, over real HTTP on loopback."""

from __future__ import annotations

import json

import pytest

from smsrelay import Client, Message
from smsrelay.errors import AuthError, ConfigError, RateLimited, WebhookError
from smsrelay.lifecycle import merge_all
from smsrelay.model import Delivery, LinkHit, OptOut, Reply, Status
from smsrelay.webhooks import WebhookRequest
from tests.fixtures.kudosity import HOOK_SECRET, SENDER, V2_KEY, wait_for_pushes


def sms_posts(emu):
    return [r.json() for r in emu.received("POST", "/v2/sms")]


def test_send_posts_one_json_message_per_recipient(kudosity_v2, kudosity_v2_emulator):
    result = kudosity_v2.send(
        ["+61491570156", "0491 570 157", "+61491570158"],
        Message("Hi {{ name }}", track_links=True),
        vars={"name": "Ann"},
    )
    assert result.results[1].error and "0491 570 157" in result.results[1].error  # no default region
    assert [r.status for r in result.results] == [Status.QUEUED, Status.REJECTED, Status.QUEUED]
    posts = sms_posts(kudosity_v2_emulator)
    assert len(posts) == 2
    assert {p["recipient"] for p in posts} == {"61491570156", "61491570158"}  # digits, no "+"
    keys = {r.to.lstrip("+"): r.key for r in result.accepted}
    for post in posts:
        assert post["message_ref"] == keys[post["recipient"]]  # the idempotency key travels in message_ref
        assert post["message"] == "Hi Ann"
        assert post["sender"] == SENDER
        assert post["track_links"] is True
    stored = {m["id"] for m in kudosity_v2_emulator.outbound}
    assert set(result.message_ids) == stored
    assert all(r.parts == 1 for r in result.accepted)


def test_send_many_is_concurrent_within_the_rate_limit(kudosity_v2_factory, kudosity_v2_emulator):
    client = kudosity_v2_factory(concurrency=4)
    numbers = [f"+6149157{i:04d}" for i in range(10, 40)]
    result = client.send(numbers, "Bulk {{ n }}", vars={"n": 1})
    assert result.all_accepted
    assert [r.to for r in result.results] == numbers  # results in the caller's order
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 30


def test_status_tolerates_read_after_write_404(kudosity_v2, kudosity_v2_emulator):
    sent = kudosity_v2.send("+61491570156", "Hi")
    mid = sent.message_ids[0]
    report = kudosity_v2.status(mid)[mid]  # the emulator 404s for 2 s after the send
    assert report.status is Status.QUEUED and report.raw_status == "PENDING"
    gets = kudosity_v2_emulator.received("GET", f"/v2/sms/{mid}")
    assert len(gets) >= 2  # at least one 404 was waited out
    kudosity_v2_emulator.advance(5)
    assert kudosity_v2.status(mid)[mid].status is Status.DELIVERED


def test_429_over_limit_is_retried_and_nothing_is_lost(kudosity_v2, kudosity_v2_emulator):
    kudosity_v2_emulator.inject("rate_limit", path="/v2/sms", method="POST", times=2)
    result = kudosity_v2.send("+61491570156", "Hi")
    assert result.all_accepted
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 3
    assert len(kudosity_v2_emulator.outbound) == 1


def test_429_until_the_retries_run_out_is_reported_not_lost(kudosity_v2_factory, kudosity_v2_emulator):
    client = kudosity_v2_factory(retries=2)
    kudosity_v2_emulator.inject("rate_limit", path="/v2/sms", times=4)
    [r] = client.send("+61491570156", "Hi").results
    # Throttled is not refused: not sent, and safe to send again after the provider's hint.
    assert r.status is Status.FAILED and r.message_id is None and r.retryable
    assert r.retry_after is not None and not r.in_doubt
    assert "OVER_LIMIT" in (r.error or "")
    assert len(kudosity_v2_emulator.outbound) == 0
    with pytest.raises(RateLimited, match="OVER_LIMIT"):
        client.check()


def test_reset_after_accept_is_reconciled_without_a_second_send(kudosity_v2, kudosity_v2_emulator):
    kudosity_v2_emulator.inject("reset_after", path="/v2/sms", method="POST")
    result = kudosity_v2.send("+61491570156", "Hi once")
    assert result.all_accepted
    assert len(kudosity_v2_emulator.outbound) == 1  # accepted once, found by message_ref
    assert result.message_ids == [kudosity_v2_emulator.outbound[0]["id"]]
    lookups = kudosity_v2_emulator.received("GET", "/v2/sms")
    assert lookups and "message_ref=" in lookups[0].query
    # The list lags 2 s behind the send; the lookup waited rather than resending.
    assert len(lookups) == 2


def test_reset_before_accept_is_looked_up_then_sent_once(kudosity_v2, kudosity_v2_emulator):
    kudosity_v2_emulator.inject("reset_before", path="/v2/sms", method="POST")
    result = kudosity_v2.send("+61491570156", "Hi once")
    assert result.all_accepted
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2
    assert len(kudosity_v2_emulator.outbound) == 1


def test_5xx_on_send_is_reconciled_not_blindly_retried(kudosity_v2, kudosity_v2_emulator):
    kudosity_v2_emulator.inject("status", status=503, body='{"error":"Service Unavailable"}', path="/v2/sms")
    result = kudosity_v2.send("+61491570156", "Hi")
    assert result.all_accepted
    assert len(kudosity_v2_emulator.outbound) == 1


def test_timeout_after_write_is_reconciled(kudosity_v2_factory, kudosity_v2_emulator):
    client = kudosity_v2_factory(timeout=0.3)
    kudosity_v2_emulator.inject("delay", seconds=0.8, path="/v2/sms", method="POST")
    result = client.send("+61491570156", "Hi")
    assert result.all_accepted
    assert len(kudosity_v2_emulator.outbound) == 1


def test_bad_key_is_an_auth_error_without_the_key(kudosity_v2_factory, kudosity_v2_emulator):
    client = kudosity_v2_factory(api_key="wrong-key-abcdef123456")
    with pytest.raises(AuthError) as info:
        client.send("+61491570156", "Hi")
    text = str(info.value) + repr(info.value)
    assert "The auth data you have provided is invalid." in text
    assert "wrong-key-abcdef123456" not in text
    assert kudosity_v2_emulator.outbound == []


def test_unknown_sender_rejects_with_kudosity_text_and_field(kudosity_v2):
    result = kudosity_v2.send("+61491570156", "Hi", sender="61400000000")
    [r] = result.results
    assert r.status is Status.REJECTED
    assert "Sender not found" in (r.error or "")


def test_missing_sender_sends_nothing(kudosity_v2_factory, kudosity_v2_emulator):
    from smsrelay.errors import ConfigError

    client = kudosity_v2_factory(sender=None)
    with pytest.raises(ConfigError, match="needs a sender") as refused:  # refused before any request
        client.send("+61491570156", "Hi")
    assert refused.value.field == "sender"
    assert kudosity_v2_emulator.received("POST", "/v2/sms") == []


def test_v2_cannot_schedule(kudosity_v2, kudosity_v2_emulator):
    from datetime import UTC, datetime

    from smsrelay.errors import Unsupported

    with pytest.raises(Unsupported, match="cannot schedule"):
        kudosity_v2.send("+61491570156", Message("Hi", send_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert kudosity_v2_emulator.received() == []


# -- webhooks ---------------------------------------------------------------------------
def test_webhook_crud_with_token_and_full_replace(kudosity_v2, kudosity_v2_emulator):
    p = kudosity_v2.provider
    hook = p.register_webhook("https://hooks.example.com/k?src=x", events=["delivery", "reply"], name="ops")
    assert hook.events == ("SMS_STATUS", "SMS_INBOUND")
    created = kudosity_v2_emulator.received("POST", "/v2/webhook")[0].json()
    assert created["url"] == f"https://hooks.example.com/k?src=x&token={HOOK_SECRET}"
    assert HOOK_SECRET not in repr(hook)
    assert [h.id for h in p.list_webhooks()] == [hook.id]
    updated = p.update_webhook(hook.id, events=["delivery", "reply", "link_hit", "opt_out"])
    put = kudosity_v2_emulator.received("PUT", f"/v2/webhook/{hook.id}")[0].json()
    # PUT replaces the whole resource, so every field is sent again.
    assert put["name"] == "ops" and put["url"] == created["url"] and "rate_limit" in put
    assert updated.events == ("SMS_STATUS", "SMS_INBOUND", "LINK_HIT", "OPT_OUT")
    assert updated.name == "ops"
    p.delete_webhook(hook.id)
    assert p.list_webhooks() == []


def test_register_without_webhook_secret_is_refused(kudosity_v2_factory, kudosity_v2_emulator):
    client = kudosity_v2_factory(webhook_secret=None)
    with pytest.raises(ConfigError, match="webhook_secret"):
        client.provider.register_webhook("https://hooks.example.com/k")
    assert kudosity_v2_emulator.received("POST", "/v2/webhook") == []


def test_pushed_events_verify_parse_thread_and_merge(kudosity_v2, kudosity_v2_emulator, webhook_sink):
    p = kudosity_v2.provider
    p.register_webhook(webhook_sink.url + "/kudosity")
    sent = kudosity_v2.send(
        ["+61491570156", "+61491570004", "+61491570007", "+61491570006", "+61491570001"], "Hi {{ 1 }}"
    )
    by_to = {r.to: r for r in sent.results}
    kudosity_v2_emulator.advance(10)
    wait_for_pushes(kudosity_v2_emulator)
    events = []
    for req in webhook_sink.webhook_requests():
        p.verify_webhook(req)
        events.extend(p.parse_webhook(req))
    deliveries = [e for e in events if isinstance(e, Delivery)]
    # At least once and out of order: a duplicate SENT arrives after DELIVERED.
    normal = [d for d in deliveries if d.phone == "+61491570156"]
    assert [d.raw_status for d in normal] == ["SENT", "DELIVERED", "SENT"]
    assert normal[0].event_id == normal[2].event_id  # the redelivery dedupes
    final = merge_all(deliveries)
    assert final[by_to["+61491570156"].message_id].status is Status.DELIVERED
    assert final[by_to["+61491570001"].message_id].status is Status.FAILED
    replies = {e.phone: e for e in events if isinstance(e, Reply)}
    assert replies["+61491570004"].text == "YES"
    assert replies["+61491570004"].message_ref == by_to["+61491570004"].key
    assert replies["+61491570004"].in_reply_to == by_to["+61491570004"].message_id
    opt_outs = [e for e in events if isinstance(e, OptOut)]
    assert {o.phone for o in opt_outs} == {"+61491570007"}
    assert len({o.event_id for o in opt_outs}) == 1  # STOP reply and OPT_OUT event dedupe
    [hit] = [e for e in events if isinstance(e, LinkHit)]
    assert hit.phone == "+61491570006" and hit.message_ref == by_to["+61491570006"].key


def test_injected_reply_is_threaded(kudosity_v2, kudosity_v2_emulator, webhook_sink):
    kudosity_v2.provider.register_webhook(webhook_sink.url + "/k", events=["reply"])
    sent = kudosity_v2.send("+61491570156", "Approve deploy? YES/NO", key="deploy-42")
    kudosity_v2_emulator.inject_reply("+61491570156", "yes")
    wait_for_pushes(kudosity_v2_emulator, 1)
    [req] = webhook_sink.webhook_requests()
    [reply] = kudosity_v2.provider.parse_webhook(req)
    assert isinstance(reply, Reply)
    assert reply.text == "yes" and reply.in_reply_to == sent.message_ids[0]
    assert reply.message_ref == sent.results[0].key


@pytest.mark.parametrize("query", ["", "token=wrong", f"token={HOOK_SECRET}&token=x", "tok=" + HOOK_SECRET])
def test_webhook_without_the_right_token_is_401(kudosity_v2, query):
    req = WebhookRequest("POST", "/k", query=query, body=b'{"event_type":"SMS_STATUS"}')
    with pytest.raises(WebhookError) as info:
        kudosity_v2.provider.verify_webhook(req)
    assert info.value.status_code == 401
    assert HOOK_SECRET not in str(info.value)


# -- polling -------------------------------------------------------------------------------
def test_poll_events_pages_resume_without_replay_or_skip(kudosity_v2, kudosity_v2_emulator):
    numbers = ["+61491570156", "+61491570157", "+61491570001", "+61491570004", "+61491570008"]
    sent = kudosity_v2.send(numbers, "Hi")
    kudosity_v2_emulator.advance(10)
    kudosity_v2_emulator.advance(3)  # past the list's read-after-write lag
    seen: list = []
    cursor = None
    for _ in range(20):
        page = kudosity_v2.events(cursor, limit=2)
        seen.extend(page)
        cursor = page.cursor
        if not page.more:
            break
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids))
    deliveries = {e.message_id: e.status for e in seen if isinstance(e, Delivery)}
    # 0008 never gets a final report, so it is not reported yet.
    assert len(deliveries) == 4 and set(deliveries.values()) == {Status.DELIVERED, Status.FAILED}
    assert [e.text for e in seen if isinstance(e, Reply)] == ["YES"]
    assert kudosity_v2.events(cursor).events == []  # resuming replays nothing
    more = kudosity_v2.send("+61491570159", "Later")
    kudosity_v2_emulator.advance(10)
    kudosity_v2_emulator.advance(3)
    later = kudosity_v2.events(cursor)
    assert [e.message_id for e in later] == more.message_ids
    assert sent.message_ids[4] not in deliveries


def test_secrets_stay_out_of_reprs_and_requests_logs(kudosity_v2, caplog):
    import logging

    with caplog.at_level(logging.DEBUG):
        kudosity_v2.send("+61491570156", "Hi")
        kudosity_v2.provider.register_webhook("https://hooks.example.com/k")
    for text in (repr(kudosity_v2), repr(kudosity_v2.provider), repr(kudosity_v2.settings), caplog.text):
        assert V2_KEY not in text and HOOK_SECRET not in text


def test_check_and_cli_json_shape(kudosity_v2):
    kudosity_v2.check()
    out = kudosity_v2.send("+61491570156", "Hi").to_dict()
    assert json.loads(json.dumps(out))["results"][0]["status"] == "queued"


def test_client_from_env_with_v2(kudosity_v2_emulator):
    env = {
        "SMSRELAY_PROVIDER": "kudosity",
        "SMSRELAY_KUDOSITY_API_KEY": V2_KEY,
        "SMSRELAY_KUDOSITY_BASE_URL": kudosity_v2_emulator.url,
        "SMSRELAY_KUDOSITY_SENDER": SENDER,
    }
    with Client(env=env) as client:
        assert client.provider.api == "v2"
        assert client.send("+61491570156", "Hi").all_accepted
