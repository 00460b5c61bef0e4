"""The smsrelay Salesforce bridge: send what Salesforce records ask for, write reports back.

>>> from smsrelay_salesforce import Bridge, load_config  # doctest: +SKIP
>>> with Bridge(load_config("bridge.yaml")) as bridge:  # doctest: +SKIP
...     print(bridge.sync().line())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Bridge", "BridgeConfig", "Summary", "__version__", "config_from_mapping", "load_config"]

if TYPE_CHECKING:
    from smsrelay_salesforce.config import BridgeConfig, config_from_mapping, load_config
    from smsrelay_salesforce.summary import Summary
    from smsrelay_salesforce.sync import Bridge

_LAZY = {
    "Bridge": "smsrelay_salesforce.sync",
    "BridgeConfig": "smsrelay_salesforce.config",
    "config_from_mapping": "smsrelay_salesforce.config",
    "load_config": "smsrelay_salesforce.config",
    "Summary": "smsrelay_salesforce.summary",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `import smsrelay_salesforce` (e.g. Airflow's check that it is installed) stays cheap.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'smsrelay_salesforce' has no attribute {name!r}")
