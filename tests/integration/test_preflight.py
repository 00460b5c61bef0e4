"""The client refuses locally what the provider would refuse: in real sends and dry runs alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smsrelay import Client, ConfigError, InvalidRequest, Message, Status
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from smsrelay.emulators.mesms import MeSmsEmulator


@pytest.mark.parametrize("dry_run", [True, False])
def test_kudosity_v2_without_a_sender_is_refused_naming_the_field(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, dry_run: bool
) -> None:
    client = kudosity_v2_factory(sender=None)
    with pytest.raises(ConfigError) as refused:
        client.send("+61491570156", "Deploy done", dry_run=dry_run)
    assert refused.value.field == "sender"
    assert "kudosity needs a sender" in str(refused.value)
    assert kudosity_v2_emulator.received("POST") == []


def test_kudosity_v1_dry_run_without_a_sender_is_refused(
    kudosity_v1_factory: Callable[..., Client], kudosity_v1_emulator: KudosityV1Emulator
) -> None:
    client = kudosity_v1_factory(sender=None)
    with pytest.raises(ConfigError) as refused:
        client.send(["+61491570156", "+61491570157"], "Hi", dry_run=True)
    assert refused.value.field == "sender"
    assert kudosity_v1_emulator.received("POST") == []


def test_a_sender_passed_to_the_send_satisfies_the_check(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    result = kudosity_v2_factory(sender=None).send("+61491570156", "Hi", sender="61481074185")
    assert [r.status for r in result.results] == [Status.QUEUED]
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 1


def test_mesms_dry_run_rejects_a_number_it_cannot_reach_and_keeps_the_rest(
    mesms: Client, mesms_emulator: MeSmsEmulator
) -> None:
    result = mesms.send(["+61491570156", "+66812342000"], "Nightly report", dry_run=True)
    assert [r.status for r in result.results] == [Status.REJECTED, Status.QUEUED]
    error = result.results[0].error or ""
    assert "only numbers in TH (+66)" in error and "AU (+61)" in error
    assert "491570156" not in error  # the reason names countries, never the number
    dry = mesms_emulator.received("POST", "/api/v2/sms/send")
    assert [r.json()["msisdns"] for r in dry] == [["66812342000"]]


def test_mesms_all_unreachable_sends_nothing(mesms: Client, mesms_emulator: MeSmsEmulator) -> None:
    result = mesms.send(["+61491570156", "+12025550143"], "Hi")
    assert {r.status for r in result.results} == {Status.REJECTED}
    assert mesms_emulator.received("POST") == []


def test_mesms_sender_over_eleven_characters_is_a_config_error(
    mesms_client_factory: Callable[..., Client], mesms_emulator: MeSmsEmulator
) -> None:
    with pytest.raises(ConfigError) as refused:
        mesms_client_factory(sender="AcmeCorporation").send("+66812342000", "Hi", dry_run=True)
    assert refused.value.field == "sender"
    assert "takes at most 11" in str(refused.value)
    assert mesms_emulator.received("POST") == []


def test_preview_shows_an_unreachable_number_as_rejected(mesms: Client) -> None:
    preview = mesms.preview("Hi", ["+66812342000", "+61491570156"])
    assert preview.messages == 1
    assert [r.to for r in preview.rejected] == ["+61491570156"]


def test_tracked_links_where_the_provider_has_none_are_refused_naming_the_field(
    mesms: Client, mesms_emulator: MeSmsEmulator
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        mesms.send("+66812342000", Message("Sale: https://shop.example.com", track_links=True), dry_run=True)
    assert refused.value.field == "track_links"
    assert mesms_emulator.received("POST") == []
