"""Kudosity, smsrelay's main provider: two APIs, two adapters behind one registry name.

``KudosityProvider(settings)`` builds :class:`KudosityV2` (``api: v2``, the default:
"Transmit Message", JSON, one recipient a call) or :class:`KudosityV1` (``api: v1``:
"Transmit SMS", form bodies, up to 500 recipients a call, signed callbacks).

- ``base.py``: what both share (settings, transport, error mapping, readers);
- ``v2.py`` and ``v1.py``: one adapter per API;
- ``tables.py``: hosts, status maps, capabilities and error rules;
- ``_php.py``: PHP's ``parse_str``/``json_encode``, which V1 callback signatures need.
"""

from __future__ import annotations

from smsrelay.providers.kudosity._php import php_json_of_query, php_parse_str
from smsrelay.providers.kudosity.base import KudosityProvider, kudosity_error, parse_time
from smsrelay.providers.kudosity.tables import V1_BASE_URL, V1_STATUS, V2_BASE_URL, V2_STATUS
from smsrelay.providers.kudosity.v1 import KudosityV1, v1_signature
from smsrelay.providers.kudosity.v2 import KudosityV2

__all__ = [
    "V1_BASE_URL",
    "V1_STATUS",
    "V2_BASE_URL",
    "V2_STATUS",
    "KudosityProvider",
    "KudosityV1",
    "KudosityV2",
    "kudosity_error",
    "parse_time",
    "php_json_of_query",
    "php_parse_str",
    "v1_signature",
]
