"""ME-SMS pages a million recipient statuses with flat memory (measured in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from smsrelay.emulators.mesms import MeSmsEmulator
from tests.conftest import ROOT

# The child streams every report of the batch and prints its count, peak RSS and tallies.
CHILD = textwrap.dedent(
    """
    import json, sys
    from bench.memory import peak_rss_mb
    from collections import Counter
    from smsrelay.config import ProviderSettings
    from smsrelay.providers.mesms import MeSmsProvider

    url, uuid = sys.argv[1], sys.argv[2]
    provider = MeSmsProvider(ProviderSettings("mesms", api_key="test-key", base_url=url))
    tally = Counter()
    count = 0
    for report in provider.iter_recipients(uuid):
        count += 1
        tally[report.status.value] += 1
    peak_mb = peak_rss_mb()
    print(json.dumps({"count": count, "peak_mb": peak_mb, "tally": tally}))
    """
)


def stream(emu: MeSmsEmulator, n: int) -> dict:
    uuid = emu.create_batch(n)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, emu.url, uuid], capture_output=True, text=True, timeout=600, check=True, cwd=ROOT
    )
    return json.loads(out.stdout)


@pytest.mark.slow
def test_a_million_recipient_statuses_stream_in_flat_memory() -> None:
    with MeSmsEmulator() as emu:
        small = stream(emu, 10_000)
        big = stream(emu, 1_000_000)
    assert big["count"] == 1_000_000
    # 100 of each magic ending per million: failed, expired, blocked (rejected), timeout (unknown).
    assert big["tally"] == {"delivered": 999_600, "failed": 100, "expired": 100, "rejected": 100, "unknown": 100}
    assert big["peak_mb"] < 150
    # Flat: a hundred times the recipients costs (almost) no more memory.
    assert big["peak_mb"] - small["peak_mb"] < 15, (small, big)
