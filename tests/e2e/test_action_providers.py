"""The Action against other providers' emulators over HTTP: the same contract, any backend."""

from __future__ import annotations

import json
import re

from smsrelay.emulators.mesms import MeSmsEmulator

OK, OK_2 = "+66812345678", "+66812345679"  # ME-SMS sends to Thai numbers only


def mesms_inputs(emu: MeSmsEmulator, **kw: str) -> dict[str, str]:
    base = {"provider": "mesms", "api-key": "test-key", "api-url": emu.url, "from": "Acme", "poll-interval": "0.05"}
    return base | {k.replace("_", "-"): v for k, v in kw.items()}


def test_mesms_one_batch_for_many_and_wait_for_delivery(run_action, start_emulator):
    emu: MeSmsEmulator = start_emulator("mesms", sent_after=0.05, delivered_after=0.1)  # type: ignore[assignment]
    run = run_action(mesms_inputs(emu, to=f"{OK}\n{OK_2}", message="Nightly report ready", wait_for="delivery"))
    assert run.code == 0, run.stdout + run.stderr
    assert len(emu.received("POST", "/api/v2/sms/send")) == 1  # one call for the whole list
    assert [b["recipients"] for b in emu.state()["batches"]] == [2]
    assert run.outputs["status"] == "delivered"


def test_mesms_lost_response_is_not_resent(run_action, start_emulator):
    """ME-SMS cannot be asked by reference, so an unknown outcome is reported, never resent."""
    emu: MeSmsEmulator = start_emulator("mesms")  # type: ignore[assignment]
    emu.inject("reset_after", method="POST", path="/api/v2/sms/send")
    run = run_action(mesms_inputs(emu, to=OK, message="hi", retries="3"))
    assert len(emu.state()["batches"]) == 1
    assert len(emu.received("POST", "/api/v2/sms/send")) == 1
    assert run.code == 1
    assert run.outputs["status"] == "unknown"
    assert any("Send outcome unknown" in e for e in run.errors)


def test_provider_errors_never_carry_the_number_into_outputs(run_action, start_emulator):
    emu: MeSmsEmulator = start_emulator("mesms")  # type: ignore[assignment]
    run = run_action(mesms_inputs(emu, to="+61491570156", message="hi"))  # not Thai: refused before sending
    assert run.code == 2
    assert "reaches only numbers in TH (+66)" in run.stdout
    assert emu.received("POST") == []
    for text in (run.summary, run.stdout.replace("::add-mask::", "#")):
        assert "491570156" not in text.replace("#+61491570156", "").replace("#61491570156", "")


def test_kaleyra_send_and_wait_for_delivery(run_action, start_emulator):
    emu = start_emulator("kaleyra", sent_after=0.05, delivered_after=0.1)
    run = run_action(
        {
            "provider": "kaleyra",
            "api-key": "test-key",
            "sid": "HXAP0000000000",
            "api-url": emu.url,
            "from": "ACMEIN",
            "to": "+919812345678",
            "message": "Build {{ github.run_number }} shipped",
            "wait-for": "delivery",
            "poll-interval": "0.05",
        }
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "delivered"
    assert len(run.json("message-ids")) == 1


def test_a_wait_the_provider_cannot_serve_is_refused_before_sending(run_action, start_emulator):
    emu = start_emulator("kaleyra")
    run = run_action(
        {
            "provider": "kaleyra",
            "api-key": "test-key",
            "sid": "HXAP0000000000",
            "api-url": emu.url,
            "to": "+919812345678",
            "message": "Deploy?",
            "wait-for": "reply",
        }
    )
    assert run.code == 2
    assert run.errors[0].startswith("::error title=Invalid input%3A wait-for::kaleyra cannot be polled for replies")
    assert emu.received() == []


def test_smskit_approval_gate(run_action, start_emulator):
    emu = start_emulator("smskit", assigned_after=0.02, sent_after=0.05, delivered_after=0.1, reply_after=0.15)
    run = run_action(
        {
            "provider": "smskit",
            "api-key": "sk_test_key",
            "api-url": emu.url,
            "to": "+254712340004",
            "message": "Deploy? YES/NO",
            "priority": "1",
            "wait-for": "reply",
            "poll-interval": "0.05",
            "wait-timeout": "20",
        }
    )
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["decision"] == "approved"
    assert len(emu.received("POST", "/api/sms/send")) == 1


# -- ids that embed the number (ME-SMS's <batch>:<msisdn>, Kudosity V1's <send>:<number>) --------


def test_mesms_ids_hide_the_number_and_a_later_step_follows_them(run_action, start_emulator):
    emu: MeSmsEmulator = start_emulator("mesms", sent_after=0.05, delivered_after=0.1)  # type: ignore[assignment]
    sent = run_action(mesms_inputs(emu, to=f"{OK}\n{OK_2}", message="hi"))
    assert sent.code == 0, sent.stdout
    ids = sent.json("message-ids")
    assert len(ids) == 2 and all(":masked-11" in i for i in ids)
    assert sent.outputs["message-id"] == ids[0]
    for number in (OK, OK_2):
        assert number[1:] not in json.dumps(sent.outputs) + sent.summary
    assert f"| {ids[0]} |" in sent.summary  # the summary shows the same token

    # A later step takes the masked ids back and waits for those very messages.
    follow = run_action(mesms_inputs(emu, message_ids=sent.outputs["message-ids"], wait_for="delivery"))
    assert follow.code == 0, follow.stdout
    assert follow.outputs["status"] == "delivered"
    assert follow.json("message-ids") == ids
    assert [s["to"] for s in follow.json("statuses")] == ["+668•••••678", "+668•••••679"]
    assert len(emu.received("POST", "/api/v2/sms/send")) == 1  # following sends nothing


def test_mesms_reveal_numbers_shows_them_in_the_outputs_only(run_action, start_emulator):
    emu: MeSmsEmulator = start_emulator("mesms")  # type: ignore[assignment]
    run = run_action(mesms_inputs(emu, to=OK, message="hi", reveal_numbers="true"))
    assert run.code == 0, run.stdout
    assert len(emu.state()["batches"]) == 1
    assert run.outputs["message-id"].endswith(f":{OK[1:]}")
    assert run.json("statuses")[0]["to"] == OK
    assert OK[1:] not in run.summary  # the summary is never revealed


def test_a_masked_id_from_other_credentials_is_refused(run_action, start_emulator):
    emu: MeSmsEmulator = start_emulator("mesms")  # type: ignore[assignment]
    sent = run_action(mesms_inputs(emu, to=OK, message="hi"))
    follow = run_action(
        mesms_inputs(emu, message_ids=sent.outputs["message-id"], wait_for="delivery") | {"api-key": "other-key"}
    )
    assert follow.code == 2
    assert follow.errors[0].startswith("::error title=Invalid input%3A message-ids::item 1 cannot be read back")


def test_kudosity_v1_ids_hide_the_number_and_a_later_step_follows_them(run_action, start_emulator):
    emu = start_emulator("kudosity-v1", credentials={"v1-key-0123456789": "v1-secret-abcdefgh"}, delivered_after=0.1)
    v1 = {
        "provider": "kudosity",
        "provider-options": '{"api": "v1"}',
        "api-key": "v1-key-0123456789",
        "api-secret": "v1-secret-abcdefgh",
        "api-url": emu.url,
        "from": "Acme",
        "poll-interval": "0.05",
    }
    au = "+61491570156"
    sent = run_action(v1 | {"to": au, "message": "hi"})
    assert sent.code == 0, sent.stdout
    shown = sent.outputs["message-id"]
    assert re.fullmatch(r"\d+:masked-11[0-9a-f]{38}", shown), shown
    assert au[1:] not in json.dumps(sent.outputs) + sent.summary
    follow = run_action(v1 | {"message-ids": shown, "wait-for": "delivery"})
    assert follow.code == 0, follow.stdout
    assert follow.outputs["status"] == "delivered" and follow.outputs["message-id"] == shown
