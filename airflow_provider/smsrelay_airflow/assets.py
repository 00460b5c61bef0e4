"""``sms_asset``: an Airflow asset that an inbound SMS updates, ready for ``schedule=[...]``.

>>> from smsrelay_airflow import sms_asset
>>> rerun = sms_asset("billing-rerun", conn_id="sms", allow=["+61491570156"],
...                   pattern=r"^RERUN (?P<job>\\w+)$")  # doctest: +SKIP
>>> with DAG("billing_backfill", schedule=[rerun]): ...  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset

__all__ = ["cursor_for", "sms_asset"]

_CURSOR_CHARS = re.compile(r"[^A-Za-z0-9_.:@-]")


def cursor_for(name: str) -> str:
    """The durable cursor of the watcher of asset ``name``: stable, and distinct per name.

    >>> cursor_for("billing-rerun")
    'airflow/billing-rerun'
    >>> cursor_for("billing rerun")
    'airflow/billing_rerun-ef13cfda'
    """
    safe = _CURSOR_CHARS.sub("_", name)[:150]
    if safe != name:  # "a b" and "a_b" must not share a cursor
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"airflow/{safe}"


def sms_asset(
    name: str,
    *,
    conn_id: str = "smsrelay_default",
    allow: Sequence[str] | str,
    keywords: Sequence[str] | str | None = None,
    pattern: str | None = None,
    to: Sequence[str] | str | None = None,
    inbox: str | None = None,
    poll_interval: float = 10.0,
    cursor: str | None = None,
    uri: str | None = None,
    hook_params: dict[str, Any] | None = None,
) -> Asset:
    """The asset ``name`` with an ``AssetWatcher`` that fires on each matching inbound SMS.

    ``allow`` (required) lists the senders; ``keywords`` and ``pattern`` narrow the
    text (see :class:`~smsrelay_airflow.triggers.inbound.SmsInboundTrigger`). Each
    matching message is one asset event, whose ``extra["payload"]`` the triggered
    run reads. The watcher's durable cursor is named after the asset (``cursor``
    overrides it), so editing the filter later keeps its place in the feed.

    >>> sms_asset("billing-rerun", conn_id="sms", allow=["+61491570156"],
    ...           pattern=r"^RERUN (?P<job>\\w+)$").watchers[0].name  # doctest: +SKIP
    'sms:billing-rerun'
    """
    from airflow.sdk import Asset, AssetWatcher

    from smsrelay_airflow.triggers.inbound import SmsInboundTrigger

    trigger = SmsInboundTrigger(
        conn_id,
        allow=allow,
        keywords=keywords,
        pattern=pattern,
        to=to,
        cursor=cursor or cursor_for(name),
        inbox=inbox,
        poll_interval=poll_interval,
        hook_params=hook_params,
    )
    watcher = AssetWatcher(name=f"sms:{name}", trigger=trigger)
    if uri is None:
        return Asset(name=name, watchers=[watcher])
    return Asset(name=name, uri=uri, watchers=[watcher])
