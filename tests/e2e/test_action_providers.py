"""The Action against other providers' emulators over HTTP: the same contract, any backend."""

from __future__ import annotations

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
