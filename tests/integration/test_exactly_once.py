"""Never resend without proof: ambiguous sends are settled by key, or reported in doubt.

Against the Kudosity V2 emulator over loopback, on the shared manual clock: the list
lags behind writes, so a lookup made too soon finds nothing and proves nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from smsrelay import AmbiguousSend, Client, ManualClock, RecipientResult, Status
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator

NUMBERS = [f"+6149157{n:04d}" for n in range(12)]


def per_recipient(emu: KudosityV2Emulator) -> Counter[str]:
    return Counter(str(m["recipient"]) for m in emu.outbound)


@pytest.mark.parametrize("lag", [6, 8, 30])
def test_resets_after_accept_under_list_lag_send_each_message_once(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator, lag: float
) -> None:
    # The measurement: lag 6 s and 10% resets gave 26 duplicates in 200.
    kudosity_v2_emulator.lag = lag
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms", times=3)
    result = kudosity_v2_factory(concurrency=1).send(NUMBERS, "Your order shipped", key="order-1-shipped")
    assert result.all_accepted and not result.in_doubt
    assert per_recipient(kudosity_v2_emulator) == Counter(n.lstrip("+") for n in NUMBERS)
    assert sorted(result.message_ids) == sorted(m["id"] for m in kudosity_v2_emulator.outbound)


def test_a_lookup_that_never_answers_leaves_the_message_in_doubt_and_unsent(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    kudosity_v2_emulator.inject("reset_before", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    client = kudosity_v2_factory()
    with pytest.raises(AmbiguousSend) as info:
        client.send(["+61491570156", "+61491570157"], "Hi", key="k-doubt")
    result = info.value.result
    assert result is not None
    # The two sends go out concurrently, so either may meet the one reset: find it by outcome.
    [doubt] = [r for r in result.results if r.in_doubt]
    [ok] = [r for r in result.results if r is not doubt]
    assert doubt.in_doubt and doubt.status is Status.UNKNOWN and doubt.key in info.value.keys
    assert not doubt.retryable and "in doubt" in (doubt.error or "")
    assert ok.accepted and not ok.in_doubt
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == 2  # never resent
    assert result.to_dict()["results"][result.results.index(doubt)]["in_doubt"] is True


def test_on_doubt_report_returns_the_in_doubt_result_instead_of_raising(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    kudosity_v2_emulator.inject("reset_before", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    result = kudosity_v2_factory(on_doubt="report").send("+61491570156", "Hi")
    assert [r.in_doubt for r in result.results] == [True]
    assert kudosity_v2_emulator.outbound == []


def test_on_doubt_resend_is_at_least_once_by_explicit_choice(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    kudosity_v2_emulator.inject("status", method="GET", path="/v2/sms", status=503, times=1000)
    result = kudosity_v2_factory().send("+61491570156", "Hi", on_doubt="resend")
    assert result.all_accepted
    # The first was accepted and could not be confirmed: the opt-in resend delivers twice.
    assert per_recipient(kudosity_v2_emulator) == Counter({"61491570156": 2})


def test_not_found_after_the_window_is_proof_and_sends_once_more(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: KudosityV2Emulator
) -> None:
    kudosity_v2_emulator.inject("reset_before", method="POST", path="/v2/sms")
    client = kudosity_v2_factory(reconcile_window=20)
    start = client.provider.clock.now()
    result = client.send("+61491570156", "Hi")
    assert result.all_accepted and len(kudosity_v2_emulator.outbound) == 1
    _, second = kudosity_v2_emulator.received("POST", "/v2/sms")
    assert (second.received_at - start).total_seconds() >= 20


def test_connection_refused_is_a_failure_not_a_rejection(clock) -> None:
    client = Client(
        "kudosity", api_key="k", sender="61481074185", base_url="http://127.0.0.1:9", retries=1, clock=clock, env={}
    )
    [r] = client.send("+61491570156", "Hi").results
    assert r.status is Status.FAILED and r.retryable and not r.in_doubt
    assert "not sent" in (r.error or "")


def test_a_negative_window_or_unknown_on_doubt_is_a_config_error(kudosity_v2_factory) -> None:
    from smsrelay.errors import ConfigError

    with pytest.raises(ConfigError, match="reconcile_window"):
        kudosity_v2_factory(reconcile_window=-1)
    with pytest.raises(ConfigError, match="on_doubt"):
        kudosity_v2_factory(on_doubt="maybe")


def test_only_a_lookup_asked_after_the_window_is_proof(
    kudosity_v2_emulator: KudosityV2Emulator, clock: ManualClock
) -> None:
    from smsrelay.config import load_settings
    from smsrelay.providers.kudosity import KudosityProvider
    from tests.fixtures.kudosity import SENDER, V2_KEY

    class SlowAnswers(KudosityProvider):
        """Its lookups take a minute of the shared clock (other workers' waits move it meanwhile)."""

        def lookup(self, keys: Sequence[str]) -> dict[str, RecipientResult]:
            found = super().lookup(keys)
            self.clock.sleep(61)
            return found

    kudosity_v2_emulator.lag = 30
    kudosity_v2_emulator.inject("reset_after", method="POST", path="/v2/sms")
    settings = load_settings("kudosity", env={}, api_key=V2_KEY, sender=SENDER, base_url=kudosity_v2_emulator.url)
    with Client(SlowAnswers(settings, clock=clock)) as client:
        result = client.send("+61491570156", "Hi")
    # The first "not found" was asked inside the window and answered after it: no proof.
    assert result.all_accepted and len(kudosity_v2_emulator.outbound) == 1
