"""Bulk send on Kaleyra: ``Client.send_many`` against the naive loop and the emulator's capacity.

Kaleyra takes a comma-separated ``to`` with one ``body``, so recipients with the same
rendered body share a request, ``batch_size`` (100) at a time. Two campaigns of N:

* **personalised** (each body has the recipient's name and code): one request per
  distinct body, so the floor is N requests.
* **shared body**: the floor is ⌈N / 100⌉ requests.

The emulator runs as its own process (``smsrelay emulate kaleyra``) on the real clock.
"""

from __future__ import annotations

from urllib.parse import urlencode

from bench.bench_send_mesms import emulator_process, figures, forget, received, timed_send
from bench.load import Call, capacity, naive
from bench.report import Figure
from smsrelay import Client, Message, Recipient

BENCH = "send_kaleyra"
KEY = "test-key"
SID = "HXAP0000000000"
SEND = f"/v1/{SID}/messages"
BATCH = 100
FULL, SMOKE = 20_000, 50
NAIVE_SAMPLE = 2_000
TEMPLATE = "Hi {{ name }}, your code is {{ code }}."
SHARED = "Flash sale today: 20% off everything until midnight."


def _number(i: int) -> str:
    return f"+9198{i:08d}"


def _recipients(n: int, run: str) -> list[Recipient]:
    return [
        Recipient(_number(i), vars={"name": f"Customer {run}{i}", "code": f"{i * 7919 % 10**6:06d}"}) for i in range(n)
    ]


def _calls(url: str, n: int, run: str, shared: bool) -> list[Call]:
    """What a script would send: one form-encoded request per recipient."""
    headers = {"api-key": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    out = []
    for r in _recipients(n, run):
        text = (
            SHARED if shared else TEMPLATE.replace("{{ name }}", r.vars["name"]).replace("{{ code }}", r.vars["code"])
        )
        form = {"to": r.to, "sender": "KLRHXA", "body": text, "source": "API"}
        out.append(Call("POST", url + SEND, urlencode(form).encode(), headers))
    return out


def _send(url: str, message: Message, recipients: list[Recipient]) -> float:
    client = Client("kaleyra", api_key=KEY, sid=SID, base_url=url, sender="KLRHXA", env={})
    return timed_send(client, message, recipients)


def run(smoke: bool) -> list[Figure]:
    n = SMOKE if smoke else FULL
    sample = min(n, NAIVE_SAMPLE)
    out: list[Figure] = []
    with emulator_process("kaleyra") as url:
        naive_personal = naive(_calls(url, sample, "naive", shared=False)) * (n / sample)
        raw_rate = capacity(_calls(url, n, "capacity", shared=False), concurrency=8)
        forget(url)
        ours = _send(url, Message(TEMPLATE, ref="bench-personal"), _recipients(n, "smsrelay"))
        sent = received(url, "POST", SEND)
        out += figures(BENCH, "personalised", n, naive_personal, ours, sent, n, raw_rate, ratio_goal=None)
        naive_shared = naive(_calls(url, sample, "naive-shared", shared=True)) * (n / sample)
        forget(url)
        ours = _send(url, Message(SHARED, ref="bench-shared"), [Recipient(_number(i)) for i in range(n)])
        sent = received(url, "POST", SEND)
        out += figures(BENCH, "shared body", n, naive_shared, ours, sent, -(-n // BATCH), None, ratio_goal=10)
    return out
