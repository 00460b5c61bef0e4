"""Airflow imports that differ between Airflow 3 (``airflow.sdk``) and 2.10/2.11.

Airflow 3 moved the authoring classes into the Task SDK, ``airflow.sdk``
(https://airflow.apache.org/docs/task-sdk/stable/); Airflow 2 has none, and the old paths
still import on 3.x but warn, so the new ones are tried first. The map mirrors the
common-compat provider's ``sdk`` module (https://github.com/apache/airflow/tree/main/providers/common/compat).
Names resolve lazily, on first use, so a DAG file that uses only the operator does not load the sensor or
notifier machinery (DAG-parse cost, issue 9).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import airflow

if TYPE_CHECKING:
    # The type checker sees Airflow 3's names (the version the locks install); at run time
    # __getattr__ below picks whichever path the running Airflow has.
    from airflow.sdk import BaseHook as BaseHook
    from airflow.sdk import BaseNotifier as BaseNotifier
    from airflow.sdk import BaseOperator as BaseOperator
    from airflow.sdk import BaseSensorOperator as BaseSensorOperator
    from airflow.sdk import Connection as Connection
    from airflow.sdk.exceptions import AirflowException as AirflowException
    from airflow.sdk.exceptions import AirflowFailException as AirflowFailException
    from airflow.sdk.exceptions import TaskDeferred as TaskDeferred
    from airflow.sdk.log import mask_secret as mask_secret

# name -> (Airflow 3 module, Airflow 2 module)
_PATHS: dict[str, tuple[str, str]] = {
    "BaseHook": ("airflow.sdk", "airflow.hooks.base"),
    "BaseNotifier": ("airflow.sdk", "airflow.notifications.basenotifier"),
    "BaseOperator": ("airflow.sdk", "airflow.models.baseoperator"),
    "BaseSensorOperator": ("airflow.sdk", "airflow.sensors.base"),
    "Connection": ("airflow.sdk", "airflow.models.connection"),
    "AirflowException": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "AirflowFailException": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "TaskDeferred": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "mask_secret": ("airflow.sdk.log", "airflow.utils.log.secrets_masker"),
}

__all__ = ["AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_PLUS", "airflow_version", "notifier_init_kwargs", *_PATHS]


def __getattr__(name: str) -> Any:
    paths = _PATHS.get(name)
    if paths is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for path in paths:
        try:
            value = getattr(importlib.import_module(path), name)
        except (ImportError, AttributeError):
            continue
        globals()[name] = value
        return value
    raise ImportError(f"cannot import {name} from Airflow {airflow.__version__}")


def airflow_version() -> tuple[int, int]:
    """The running Airflow's (major, minor).

    >>> airflow_version() >= (2, 10)
    True
    """
    major, minor = [*airflow.__version__.split("."), "0"][:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


AIRFLOW_V_3_PLUS = airflow_version() >= (3, 0)
AIRFLOW_V_3_1_PLUS = airflow_version() >= (3, 1)


def notifier_init_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``BaseNotifier(context=...)`` exists only from 3.1 (the Task SDK's ``bases/notifier.py``)."""
    return kwargs if AIRFLOW_V_3_1_PLUS else {}
