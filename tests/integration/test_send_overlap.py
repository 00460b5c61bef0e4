"""send_many overlaps preparing with sending: requests leave while later recipients are still being read.

No timing is asserted: the recipient iterator itself waits (on I/O, bounded) for the emulator
to have received a request before it hands out its last recipient, which it can only see if
the client sent before it had read every recipient.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from smsrelay import Client, Message, Recipient
from smsrelay.emulators.base import Emulator
from smsrelay.errors import TemplateError


def _posts_seen(emu: Emulator, path: str, *, timeout: float = 10.0) -> int:
    """Requests to ``path`` the emulator holds, waiting (bounded) until there is one."""
    deadline = time.monotonic() + timeout
    while True:
        seen = len(emu.received("POST", path))
        if seen or time.monotonic() >= deadline:
            return seen
        time.sleep(0.005)


def test_the_first_request_reaches_the_provider_before_the_last_recipient_is_read(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: Emulator
) -> None:
    client = kudosity_v2_factory()
    numbers = [f"+6149157{i:04d}" for i in range(10, 30)]
    seen_before_last: list[int] = []

    def recipients() -> Iterator[Recipient]:
        for i, number in enumerate(numbers):
            if i == len(numbers) - 1:
                seen_before_last.append(_posts_seen(kudosity_v2_emulator, "/v2/sms"))
            yield Recipient(number, vars={"n": str(i)})

    result = client.send_many(Message("Order {{ n }} shipped", ref="overlap"), recipients(), on_invalid="skip")
    assert result.all_accepted and [r.to for r in result.results] == numbers
    assert seen_before_last and seen_before_last[0] >= 1  # sent before the last recipient was read
    assert len(kudosity_v2_emulator.received("POST", "/v2/sms")) == len(numbers)  # each once


def test_a_template_error_on_the_last_recipient_still_sends_nothing(
    kudosity_v2_factory: Callable[..., Client], kudosity_v2_emulator: Emulator
) -> None:
    client = kudosity_v2_factory()
    recipients = [Recipient(f"+6149157{i:04d}", vars={"name": "Ann"}) for i in range(10, 30)]
    recipients.append(Recipient("+61491570099"))  # no name: its body cannot be rendered
    with pytest.raises(TemplateError, match="name"):
        client.send_many(Message("Hi {{ name }}"), recipients)
    assert kudosity_v2_emulator.received("POST", "/v2/sms") == []


def test_shared_bodies_still_take_the_fewest_requests_when_streamed(
    kudosity_v1_factory: Callable[..., Client], kudosity_v1_emulator: Emulator
) -> None:
    client = kudosity_v1_factory()
    numbers = [f"+614915{i:05d}" for i in range(1_200)]
    result = client.send_many(Message("Sale today"), numbers)
    assert result.all_accepted
    posts = kudosity_v1_emulator.received("POST", "/send-sms.json")
    assert sorted(len(p.form()["to"].split(",")) for p in posts) == [200, 500, 500]
