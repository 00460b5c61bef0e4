"""Wire-faithful local servers of each provider's HTTP API, imported lazily by name."""

from __future__ import annotations

import importlib

from smsrelay.emulators.base import Emulator

__all__ = ["EMULATORS", "emulator_class"]

EMULATORS: dict[str, str] = {
    "kudosity-v2": "smsrelay.emulators.kudosity_v2:KudosityV2Emulator",
    "kudosity-v1": "smsrelay.emulators.kudosity_v1:KudosityV1Emulator",
    "smskit": "smsrelay.emulators.smskit:SmsKitEmulator",
    "mesms": "smsrelay.emulators.mesms:MeSmsEmulator",
    "kaleyra": "smsrelay.emulators.kaleyra:KaleyraEmulator",
}


def emulator_class(name: str) -> type[Emulator]:
    """The emulator class for a name in :data:`EMULATORS`."""
    target = EMULATORS.get(name.lower())
    if target is None:
        raise KeyError(f"unknown emulator {name!r}; choose one of: {', '.join(EMULATORS)}")
    module, _, attr = target.partition(":")
    cls: type[Emulator] = getattr(importlib.import_module(module), attr)
    return cls
