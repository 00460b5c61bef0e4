"""RequestStream: streamed requests are exactly the ones planning every message at once gives, in linear work."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from smsrelay.config import ProviderSettings
from smsrelay.model import Message, PreparedSms
from smsrelay.providers.base import Provider
from smsrelay.providers.batching import RequestStream
from smsrelay.providers.kaleyra import KaleyraProvider
from smsrelay.providers.kudosity.v1 import KudosityV1
from smsrelay.providers.kudosity.v2 import KudosityV2
from smsrelay.providers.mesms import MeSmsProvider
from smsrelay.providers.sandbox import SandboxProvider
from smsrelay.providers.smskit import SmsKitProvider

Plan = Callable[[list[PreparedSms]], list[list[PreparedSms]]]

# Real adapters, as the client gets them; Kaleyra also with a small batch_size so requests fill often.
ADAPTERS: dict[str, Callable[[Path], Provider]] = {
    "mesms": lambda _: MeSmsProvider(ProviderSettings("mesms", api_key="k")),
    "kaleyra": lambda _: KaleyraProvider(ProviderSettings("kaleyra", api_key="k", options={"sid": "HX1"})),
    "kaleyra-batch-7": lambda _: KaleyraProvider(
        ProviderSettings("kaleyra", api_key="k", options={"sid": "HX1", "batch_size": 7})
    ),
    "kudosity-v1": lambda _: KudosityV1(
        ProviderSettings("kudosity", api_key="k", api_secret="s", options={"api": "v1"})
    ),
    "kudosity-v2": lambda _: KudosityV2(ProviderSettings("kudosity", api_key="k")),
    "smskit": lambda _: SmsKitProvider(ProviderSettings("smskit", api_key="sk_unit")),
    # The base class's plan: chunks of bulk_max in order, any bodies together.
    "sandbox": lambda tmp: SandboxProvider(ProviderSettings("sandbox", options={"path": str(tmp / "sandbox.db")})),
}

SHARED = [Message("Sale today"), Message("Sale today", sender="Shop"), Message("Hi", options={"flash": True})]
PERSONAL = Message("Hi {{ name }}")
LATER = Message("Hi {{ name }}", send_at=datetime(2027, 1, 1, tzinfo=UTC))


def messages(n: int, *, personalised: float, seed: int) -> list[PreparedSms]:
    """``n`` messages, a ``personalised`` share with a body of their own (some repeat, as equal names do)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < personalised:
            message = rng.choice([PERSONAL, LATER])
            body = f"Hi {rng.randrange(n)}"
        else:
            message = rng.choice(SHARED)
            body = message.body
        out.append(PreparedSms(f"+6681{i:07d}", body, f"k{i}", "GSM-7", 1, message))
    return out


def counting(plan: Plan) -> tuple[Plan, list[int]]:
    """``plan``, and a list whose one item counts the messages passed to it."""
    seen = [0]

    def counted(batch: list[PreparedSms]) -> list[list[PreparedSms]]:
        seen[0] += len(batch)
        return plan(batch)

    return counted, seen


def stream(
    provider: Provider, sms: Sequence[PreparedSms], windows: Sequence[int], plan: Plan | None = None
) -> tuple[list[list[PreparedSms]], list[int]]:
    """The requests of ``sms`` streamed in windows of ``windows`` (the last size repeats), and what ``add`` gave."""
    s = RequestStream(plan or provider.plan_requests, provider.capabilities.bulk_max, provider.request_key)
    requests: list[list[PreparedSms]] = []
    handed: list[int] = []
    i, w = 0, 0
    while i < len(sms):
        size = windows[min(w, len(windows) - 1)]
        out = s.add(sms[i : i + size])
        handed.append(sum(len(c) for c in out))
        requests += out
        i, w = i + size, w + 1
    return requests + s.close(), handed


def grouping(requests: Sequence[Sequence[PreparedSms]]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(p.key for p in chunk) for chunk in requests)


SEND_MANY = [1 << k for k in range(13)]  # 1, 2, 4 … 4,096, as Client.send_many


@pytest.mark.parametrize("name", list(ADAPTERS))
@pytest.mark.parametrize("windows", [[1], [7], [300], SEND_MANY], ids=["1", "7", "300", "send_many"])
@pytest.mark.parametrize("personalised", [0.0, 0.3, 1.0])
def test_streamed_requests_equal_planning_everything_at_once(
    name: str, windows: list[int], personalised: float, tmp_path: Path
) -> None:
    provider = ADAPTERS[name](tmp_path)
    sms = messages(2000, personalised=personalised, seed=len(name) * 31 + windows[0])
    streamed, _ = stream(provider, sms, windows)
    whole = provider.plan_requests(sms)
    assert grouping(streamed) == grouping(whole)
    # The key the stream groups by is the adapter's own: no request of its plan mixes two.
    assert all(len({provider.request_key(p) for p in chunk}) == 1 for chunk in whole)


@pytest.mark.parametrize(
    ("name", "personalised"),
    [("mesms", 1.0), ("mesms", 0.0), ("kaleyra", 1.0), ("kaleyra-batch-7", 0.3), ("kudosity-v1", 0.3)],
)
def test_planning_work_is_linear_in_the_messages(name: str, personalised: float, tmp_path: Path) -> None:
    # Before, every window re-planned all waiting messages: 200,000 personalised ones cost ~5.2 million.
    provider = ADAPTERS[name](tmp_path)
    n = 200_000 if (name, personalised) == ("mesms", 1.0) else 20_000
    sms = messages(n, personalised=personalised, seed=7)
    plan, seen = counting(provider.plan_requests)
    requests, _ = stream(provider, sms, SEND_MANY, plan)
    assert sum(len(c) for c in requests) == n
    assert seen[0] <= 2 * n


@pytest.mark.parametrize("name", ["smskit", "kudosity-v2"])
def test_one_message_requests_leave_at_once(name: str, tmp_path: Path) -> None:
    provider = ADAPTERS[name](tmp_path)
    assert provider.capabilities.bulk_max == 1
    sms = messages(20_000, personalised=1.0, seed=3)
    s = RequestStream(provider.plan_requests, provider.capabilities.bulk_max, provider.request_key)
    for i in range(0, len(sms), 4096):
        window = sms[i : i + 4096]
        # Every message is a final request of its own: add hands it out, nothing waits for close.
        assert [p.key for c in s.add(window) for p in c] == [p.key for p in window]
    assert s.close() == []


def test_a_full_shared_request_leaves_before_close_and_the_rest_wait() -> None:
    provider = ADAPTERS["kaleyra-batch-7"](Path())
    shared = [PreparedSms(f"+66810000{i:03d}", "Sale", f"s{i}", "GSM-7", 1, SHARED[0]) for i in range(10)]
    personal = [PreparedSms(f"+66820000{i:03d}", f"Hi {i}", f"p{i}", "GSM-7", 1, PERSONAL) for i in range(10)]
    s = RequestStream(provider.plan_requests, provider.capabilities.bulk_max, provider.request_key)
    assert [len(c) for c in s.add(shared[:4] + personal[:5])] == []
    assert [[p.key for p in c] for c in s.add(shared[4:] + personal[5:])] == [[f"s{i}" for i in range(7)]]
    # A personalised request may still take a recipient with the same body, so it waits for close.
    assert sorted(len(c) for c in s.close()) == [1] * 10 + [3]
