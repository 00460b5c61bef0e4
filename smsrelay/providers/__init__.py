"""The provider adapters, imported lazily by name so a user loads only the one in use."""

from __future__ import annotations

import importlib

from smsrelay.errors import ConfigError
from smsrelay.providers.base import Provider

__all__ = ["PROVIDERS", "provider_class"]

# name -> "module:Class". Kudosity has two APIs: KudosityProvider(settings) builds KudosityV2 or
# KudosityV1, as its `api: v2 | v1` option says.
PROVIDERS: dict[str, str] = {
    "sandbox": "smsrelay.providers.sandbox:SandboxProvider",
    "kudosity": "smsrelay.providers.kudosity:KudosityProvider",
    "smskit": "smsrelay.providers.smskit:SmsKitProvider",
    "mesms": "smsrelay.providers.mesms:MeSmsProvider",
    "kaleyra": "smsrelay.providers.kaleyra:KaleyraProvider",
}


def provider_class(name: str) -> type[Provider]:
    """The adapter class for a provider name.

    >>> provider_class("sandbox").name
    'sandbox'
    """
    target = PROVIDERS.get(name.lower())
    if target is None:
        raise ConfigError(f"unknown provider {name!r}; choose one of: {', '.join(PROVIDERS)}", field="provider")
    module, _, attr = target.partition(":")
    try:
        cls: type[Provider] = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"provider {name!r} is not available: {exc}", field="provider") from None
    return cls
