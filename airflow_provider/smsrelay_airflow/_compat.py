"""Airflow imports that differ between Airflow 3 (``airflow.sdk``) and 2.10/2.11.

research/airflow.md §2.4/§2.5: Airflow 2 has no ``airflow.sdk``; the old paths still
import on 3.x but warn, so the new ones are tried first.
"""

from __future__ import annotations

from typing import Any

import airflow

try:
    from airflow.sdk import BaseHook, BaseNotifier, BaseOperator, BaseSensorOperator, Connection
except ImportError:  # Airflow 2.x
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.models import BaseOperator, Connection  # type: ignore[no-redef]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore[no-redef]
    from airflow.sensors.base import BaseSensorOperator  # type: ignore[no-redef]

try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
except ImportError:  # Airflow 2.x
    from airflow.exceptions import AirflowException, AirflowFailException, TaskDeferred  # type: ignore[no-redef]

try:
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.x
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore[no-redef]

__all__ = [
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "Connection",
    "TaskDeferred",
    "airflow_version",
    "mask_secret",
]


def airflow_version() -> tuple[int, int]:
    """The running Airflow's (major, minor).

    >>> airflow_version() >= (2, 10)
    True
    """
    major, minor = ([*airflow.__version__.split("."), "0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


AIRFLOW_V_3_PLUS = airflow_version() >= (3, 0)
AIRFLOW_V_3_1_PLUS = airflow_version() >= (3, 1)


def notifier_init_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``BaseNotifier(context=...)`` exists only from 3.1 (research/airflow.md §2.6)."""
    return kwargs if AIRFLOW_V_3_1_PLUS else {}
