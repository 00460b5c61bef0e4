"""Shared pytest fixtures. Each area adds its own in tests/fixtures/<area>.py, loaded here."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from smsrelay import Client, ManualClock
from smsrelay.emulators import emulator_class
from smsrelay.emulators.base import Emulator

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Property tests check behaviour, not speed: with two xdist workers on two busy cores a
# single example can take longer than hypothesis' 200 ms default deadline.
settings.register_profile("smsrelay", deadline=None)
settings.load_profile("smsrelay")

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (ROOT / "tests" / "fixtures").glob("*.py") if p.stem != "__init__"
)


@pytest.fixture(autouse=True)
def _own_secrets() -> Iterator[None]:
    """Each test starts with the secrets registered before it, and its own are forgotten after.

    Redaction is process-wide, so a test whose key is a plain word ("wrong") would otherwise
    mask that word in a later test's error message on the same xdist worker.
    """
    from smsrelay import redaction

    with redaction._lock:
        saved = (set(redaction._secrets), redaction._pattern)
    yield
    with redaction._lock:
        redaction._secrets.clear()
        redaction._secrets.update(saved[0])
        redaction._pattern = saved[1]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
def sandbox(tmp_path: pathlib.Path, clock: ManualClock) -> Iterator[Client]:
    """A sandbox client on its own SQLite file and a manual clock."""
    client = Client("sandbox", path=str(tmp_path / "sandbox.db"), clock=clock, env={})
    yield client
    client.close()


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start any emulator by name or class on a random loopback port; stopped after the test."""
    running: list[Emulator] = []

    def start(name_or_cls: str | type[Emulator], **kw: Any) -> Emulator:
        cls = emulator_class(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
        emu = cls(**kw).start()
        running.append(emu)
        return emu

    yield start
    for emu in running:
        emu.stop()
