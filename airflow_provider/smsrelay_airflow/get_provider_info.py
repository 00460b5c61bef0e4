"""What Airflow learns about this provider, through the ``apache_airflow_provider`` entry point.

Validated by Airflow against ``provider_info.schema.json``. It imports no Airflow code.
"""

from __future__ import annotations

from typing import Any

from smsrelay_airflow.connections import BACKENDS, conn_fields, ui_field_behaviour

INTEGRATION = "smsrelay"


def get_provider_info() -> dict[str, Any]:
    """The provider's hooks, operators, sensors, triggers, notifier and connection types.

    >>> get_provider_info()["package-name"]
    'smsrelay-airflow'
    """
    return {
        "package-name": "smsrelay-airflow",
        "name": "smsrelay",
        "description": "Send SMS through Kudosity, SMSKit, ME-SMS, Kaleyra or a sandbox; "
        "wait for delivery reports and for replies (approval by SMS); start DAGs from inbound SMS.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/smsrelay/smsrelay/blob/main/docs/airflow.md",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["smsrelay_airflow.hooks.sms"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["smsrelay_airflow.operators.send", "smsrelay_airflow.operators.salesforce"],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["smsrelay_airflow.sensors.delivery", "smsrelay_airflow.sensors.reply"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["smsrelay_airflow.triggers.sms", "smsrelay_airflow.triggers.inbound"],
            }
        ],
        "notifications": ["smsrelay_airflow.notifications.sms.SmsNotifier"],
        "connection-types": [
            {
                "connection-type": b.conn_type,
                "hook-class-name": b.hook_class,
                "hook-name": b.hook_name,
                "ui-field-behaviour": ui_field_behaviour(b, kebab=True),
                "conn-fields": conn_fields(b),
            }
            for b in BACKENDS.values()
        ],
    }
