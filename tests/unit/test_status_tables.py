"""Every status word each provider documents, through its adapter's parser, to the common lifecycle.

The expectations are written from the vendors' documents, not copied from the adapters' tables:
``research/providers.md`` (§1.6 SMSKit, §2.4 ME-SMS, §3.9 Kaleyra and §4's common lifecycle)
and ``research/kudosity.md`` with the V2 OpenAPI's ``Status``/``MessageStatus`` enums. Each word
goes in where the provider sends it (a push, a callback, a poll's row), so a table entry that is
dropped or changed fails here; ``make mutation`` gates the adapters' tables on these tests.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from smsrelay import InvalidRequest, ManualClock, Status
from smsrelay.config import ProviderSettings
from smsrelay.providers.kaleyra import map_status
from smsrelay.providers.kudosity import KudosityProvider
from smsrelay.providers.mesms import MeSmsProvider
from smsrelay.providers.smskit import SmsKitProvider
from smsrelay.webhooks import WebhookRequest

NOW = datetime(2026, 6, 23, 10, 5, 0, tzinfo=UTC)

# research/kudosity.md and the V2 OpenAPI: the 13 Status values, plus MessageStatus's INVALID.
KUDOSITY_V2 = [
    ("PENDING", Status.QUEUED),  # queued at Kudosity
    ("PENDING_APPROVAL", Status.QUEUED),  # waiting for Kudosity support's approval
    ("SUBMITTED", Status.SENT),  # submitted to the carrier
    ("SENT", Status.SENT),
    ("ACCEPTED", Status.SENT),  # accepted by the carrier; MessageStatus says it is not "delivered"
    ("DELIVERED", Status.DELIVERED),
    ("READ", Status.DELIVERED),  # read, so delivered
    ("FAILED", Status.FAILED),
    ("HARD_BOUNCE", Status.FAILED),  # the handset is disconnected
    ("UNDELIVERABLE", Status.FAILED),
    ("SOFT_BOUNCE", Status.EXPIRED),  # OAS1 send-sms `validity`: expiry is reported as a soft bounce
    ("REJECTED", Status.REJECTED),  # rejected by Kudosity support
    ("INVALID", Status.REJECTED),  # webhook-only; an invalid destination (an assumption the adapter marks)
    ("OTHER", Status.UNKNOWN),  # any other report: final, with no delivery known
]
# OAS1 send-sms `dlr_callback`: the four values of `status`.
KUDOSITY_V1 = [
    ("delivered", Status.DELIVERED),
    ("pending", Status.SENT),  # no report yet; Kudosity allows up to 72 h
    ("soft-bounce", Status.EXPIRED),
    ("hard-bounce", Status.FAILED),
]
# research/providers.md §3.9: a status alone, as a poll row or a callback carries it.
KALEYRA = [
    ("Sent", Status.SENT),
    ("SUBMITTED", Status.SENT),
    ("ENROUTE", Status.SENT),
    ("Delivered", Status.DELIVERED),
    ("DELIVRD", Status.DELIVERED),  # the SMPP platform's DLR word
    ("NotSent", Status.REJECTED),  # never transmitted
    ("NOT-SENT", Status.REJECTED),
    ("UnDelivered", Status.FAILED),
    ("UNDELIV", Status.FAILED),
    ("Failed", Status.FAILED),
    ("EXPIRED", Status.EXPIRED),
    ("SENT - NO DLR", Status.UNKNOWN),  # final, and no delivery report will come
]
# §3.9: a trace (`status_details`) that says more than the status beside it.
KALEYRA_TRACES = [
    ("DELIVERED", Status.DELIVERED),
    ("DELIVRD", Status.DELIVERED),
    ("EXPIRED", Status.EXPIRED),
    ("SENT - NO DLR", Status.UNKNOWN),
]
# §2.4: a recipient row's status, with the doc's own description as the reason.
MESMS_RECIPIENT = [
    ("pending", Status.QUEUED, None),
    ("success", Status.DELIVERED, None),
    ("failed", Status.FAILED, "Send failed (phone off / no signal)"),
    ("invalid", Status.REJECTED, "Invalid number"),
    ("blocked", Status.REJECTED, "Number is on the blocklist"),
    ("expired", Status.EXPIRED, "Retry window exhausted"),
    ("timeout", Status.UNKNOWN, "No delivery report received within the allowed window"),
]
# §4: a send's (message-level) status.
MESMS_MESSAGE = [
    ("scheduled", Status.SCHEDULED),
    ("pending", Status.QUEUED),
    ("sent", Status.SENT),
    ("failed", Status.FAILED),
    ("cancelled", Status.CANCELLED),
]
# §1.6: a job's status, as a poll answers it.
SMSKIT_JOB = [
    ("Pending", Status.QUEUED),  # in SMSKit's queue
    ("Assigned", Status.QUEUED),  # on a phone, not yet radio-sent: not "sent"
    ("Sent", Status.SENT),  # handed to the carrier by the phone
    ("Delivered", Status.DELIVERED),
    ("Failed", Status.FAILED),
    ("DeadLetter", Status.FAILED),  # retries exhausted
]
# §1.6: the push events that report a job's status.
SMSKIT_EVENTS = [
    ("sms:sent", Status.SENT),
    ("sms:delivered", Status.DELIVERED),
    ("sms:failed", Status.FAILED),
]


@pytest.mark.parametrize(("word", "expected"), KUDOSITY_V2)
def test_kudosity_v2_push(word: str, expected: Status) -> None:
    provider = KudosityProvider(ProviderSettings("kudosity", api_key="k-123456"))
    status = {"id": "m1", "type": "SMS", "sender": "61491570017", "recipient": "61491570006", "status": word}
    [d] = provider.parse_v2_event({"event_type": "SMS_STATUS", "timestamp": "2026-08-05T11:58:03Z", "status": status})
    assert (d.status, d.raw_status) == (expected, word)
    # A send's or a look-up's answer (OAS2 SMSResponse.status) reads the same words, in lower case.
    answer = provider._v2_result("+61491570006", "sr-1", {"id": "m1", "status": word.lower()})
    assert answer.status is expected


@pytest.mark.parametrize(("word", "expected"), KUDOSITY_V1)
def test_kudosity_v1_callback(word: str, expected: Status) -> None:
    settings = ProviderSettings("kudosity", api_key="k-123456", api_secret="s-123456", options={"api": "v1"})
    query = f"message_id=1&mobile=61400000001&datetime=2020-05-16+12%3A10%3A00&status={word}&user_id=1"
    [d] = KudosityProvider(settings).parse_webhook(WebhookRequest("GET", "/dlr", query))
    assert (d.status, d.raw_status) == (expected, word)


@pytest.mark.parametrize(("word", "expected"), KALEYRA)
def test_kaleyra_status(word: str, expected: Status) -> None:
    assert map_status(word)[0] is expected


@pytest.mark.parametrize(("trace", "expected"), KALEYRA_TRACES)
def test_kaleyra_trace_overrides_a_sent_status(trace: str, expected: Status) -> None:
    assert map_status("Sent", trace)[0] is expected


@pytest.mark.parametrize(("word", "expected", "reason"), MESMS_RECIPIENT)
def test_mesms_recipient_row(word: str, expected: Status, reason: str | None) -> None:
    provider = MeSmsProvider(ProviderSettings("mesms", api_key="k"), clock=ManualClock(NOW))
    d = provider._delivery("b-1", {"msisdn": "66812345678", "status": word, "updatedAt": "2026-06-23T10:00:00Z"})
    assert d is not None and (d.status, d.raw_status) == (expected, word)
    assert (d.reason or "").lower() == (reason or "").lower()


def test_mesms_recipient_filter_takes_every_documented_status() -> None:
    provider = MeSmsProvider(ProviderSettings("mesms", api_key="k", base_url="http://127.0.0.1:9"))
    with pytest.raises(InvalidRequest) as info:
        next(provider.iter_recipients("b-1", status="delivered"))  # ME-SMS calls it "success"
    assert info.value.field == "status"
    named = str(info.value).split("one of ", 1)[1]
    assert named.split(", ") == [word for word, _, _ in MESMS_RECIPIENT]


@pytest.mark.parametrize(("word", "expected"), MESMS_MESSAGE)
def test_mesms_message(word: str, expected: Status) -> None:
    batch = MeSmsProvider._batch({"uuid": "b-1", "status": word, "recipients": 2})
    assert (batch.status, batch.raw_status) == (expected, word)


def _smskit() -> SmsKitProvider:
    settings = ProviderSettings("smskit", api_key="sk_unit", webhook_secret="whsec_unit_0123456789abcdef")
    return SmsKitProvider(settings, clock=ManualClock(NOW))


@pytest.mark.parametrize(("word", "expected"), SMSKIT_JOB)
def test_smskit_job_poll(word: str, expected: Status, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="smsrelay"):
        d = _smskit()._delivery({"jobId": "job_1", "status": word, "createdAt": "2026-06-23T10:00:00Z"}, source="poll")
    assert (d.status, d.raw_status) == (expected, word)
    assert "unknown job status" not in caplog.text  # a documented status is known, not guessed


@pytest.mark.parametrize(("event", "expected"), SMSKIT_EVENTS)
def test_smskit_push(event: str, expected: Status) -> None:
    body = json.dumps({"event": event, "eventId": "evt_1", "jobId": "job_1", "occurredAt": "2026-06-23T10:00:00Z"})
    [d] = _smskit().parse_webhook(WebhookRequest("POST", "/hooks/smskit", body=body.encode()))  # verified before
    assert d.status is expected
