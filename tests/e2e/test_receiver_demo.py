"""`make demo`'s push part runs to the end and shows events arriving from both providers."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_receiver_demo_shows_live_pushes():
    proc = subprocess.run(
        [sys.executable, "-m", "smsrelay.receiver_demo", "--timeout", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kudosity delivery" in proc.stdout and "smskit delivery" in proc.stdout
    assert "without the URL token: HTTP 401" in proc.stdout
    assert '"duplicates": 1' in proc.stdout
