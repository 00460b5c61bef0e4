"""``SalesforceSmsSyncOperator``: one cycle of the smsrelay Salesforce bridge as an Airflow task.

It needs the ``smsrelay-salesforce`` distribution (``pip install smsrelay-salesforce``);
without it, importing this module raises ``AirflowOptionalProviderFeatureException``
saying so, and the rest of the provider works as before.

The org comes from an Airflow **Salesforce connection** (conn type ``salesforce``, as
Airflow's Salesforce provider defines it), the SMS provider from an **smsrelay
connection**, and the field mapping, filter, template and limits from an optional
``bridge.yaml`` (its ``salesforce`` and ``sms`` sections are ignored).

>>> SalesforceSmsSyncOperator(task_id="sms_sync", salesforce_conn_id="salesforce_default",
...     sms_conn_id="smsrelay_default", config_file="/opt/smsrelay/bridge.yaml",
...     state_file="/data/smsrelay/bridge-state.db")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import smsrelay_salesforce  # noqa: F401
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    try:
        from airflow.exceptions import AirflowOptionalProviderFeatureException as _Optional
    except ImportError:  # very old Airflow: fall back to a plain ImportError
        _Optional = ImportError  # type: ignore[assignment,misc]
    raise _Optional(
        "SalesforceSmsSyncOperator needs the smsrelay-salesforce distribution, which is not installed: "
        "pip install smsrelay-salesforce"
    ) from _missing

from smsrelay_airflow._compat import AirflowException, AirflowFailException, BaseHook, BaseOperator, mask_secret

if TYPE_CHECKING:
    from smsrelay_salesforce.config import BridgeConfig, OrgAuth

__all__ = ["SalesforceSmsSyncOperator", "org_auth_from_connection"]


def _extra(conn: Any) -> dict[str, Any]:
    raw = conn.extra_dejson if conn.extra else {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        # Airflow 2's UI stored Salesforce extras as extra__salesforce__<field>.
        name = key.removeprefix("extra__salesforce__")
        if value not in (None, ""):
            out[name] = value
    return out


def org_auth_from_connection(conn: Any) -> OrgAuth:
    """Bridge sign-in settings from an Airflow Salesforce connection.

    - JWT bearer: ``login`` (the integration user), extras ``consumer_key`` and
      ``private_key`` (PEM) or ``private_key_file_path``, and ``domain`` (My Domain,
      e.g. ``acme.my``).
    - Client credentials: extras ``consumer_key``, ``consumer_secret`` (or the
      password field) and ``domain``; no login.
    - An access token: extra ``instance_url`` and the token in the password field.

    Username + password (+ security token) is refused: Salesforce retires SOAP login().

    >>> org_auth_from_connection(conn).method  # doctest: +SKIP
    'jwt'
    """
    from smsrelay_salesforce.config import OrgAuth

    from smsrelay import ConfigError

    extra = _extra(conn)
    where = f"Airflow connection {conn.conn_id!r}"
    domain = extra.get("domain")
    login_url = extra.get("login_url") or (f"https://{domain}.salesforce.com" if domain else None)
    if domain in ("login", "test"):
        raise ConfigError(f"{where}: set domain to your My Domain (e.g. acme.my), not {domain!r}", field="domain")
    common: dict[str, Any] = {
        "login_url": login_url,
        "api_version": str(extra.get("version") or "62.0"),
        "ca_bundle": extra.get("ca_bundle"),
    }
    key, key_file = extra.get("private_key"), extra.get("private_key_file_path")
    if key or key_file:
        if not (conn.login and extra.get("consumer_key") and login_url):
            raise ConfigError(
                f"{where}: JWT sign-in needs login (the integration user), extra consumer_key and extra domain",
                field="login",
            )
        if key:
            mask_secret(key)
        return OrgAuth(
            method="jwt",
            username=conn.login,
            consumer_key=extra["consumer_key"],
            private_key=key,
            private_key_file=key_file,
            **common,
        )
    if extra.get("consumer_key") and not conn.login:
        secret = extra.get("consumer_secret") or conn.password
        if not (secret and login_url):
            raise ConfigError(
                f"{where}: client credentials need extra consumer_secret (or the password field) and extra domain",
                field="consumer_secret",
            )
        mask_secret(secret)
        return OrgAuth(
            method="client_credentials", consumer_key=extra["consumer_key"], consumer_secret=secret, **common
        )
    instance = extra.get("instance_url") or (f"https://{extra['instance']}" if extra.get("instance") else None)
    if instance and conn.password and not extra.get("security_token"):
        mask_secret(conn.password)
        return OrgAuth(method="token", instance_url=instance, access_token=conn.password, **common)
    raise ConfigError(
        f"{where}: use JWT bearer (login, consumer_key, private_key, domain) or client credentials "
        "(consumer_key, consumer_secret, domain); username and password sign-in is not supported because "
        "Salesforce retires SOAP login()",
        field="extra",
    )


class SalesforceSmsSyncOperator(BaseOperator):
    """Run one bridge sync: send what Salesforce records ask for, then write events back.

    Returns the run's summary (JSON-safe, to XCom): records sent, updated, failed, and
    the Salesforce API calls spent per phase. Records or events Salesforce refused fail
    the task (after the rest of the cycle finished) unless ``fail_on_errors=False``; an
    API budget pause does not fail it.

    ``state_file`` keeps the event cursor between runs: put it on storage that outlives
    the worker (default: ``$AIRFLOW_HOME/smsrelay-salesforce/<dag_id>.<task_id>.db``).
    """

    template_fields: Sequence[str] = ("salesforce_conn_id", "sms_conn_id", "config_file", "state_file")
    ui_color = "#9fd3f5"

    def __init__(
        self,
        *,
        salesforce_conn_id: str = "salesforce_default",
        sms_conn_id: str = "smsrelay_default",
        config_file: str | None = None,
        bridge_config: Mapping[str, Any] | None = None,
        state_file: str | None = None,
        dry_run: bool = False,
        push: bool = True,
        pull: bool = True,
        fail_on_errors: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if config_file and bridge_config:
            raise ValueError(f"{self.task_id}: give config_file or bridge_config, not both")
        if not (push or pull):
            raise ValueError(f"{self.task_id}: push and pull are both off; there is nothing to do")
        self.salesforce_conn_id = salesforce_conn_id
        self.sms_conn_id = sms_conn_id
        self.config_file = config_file
        self.bridge_config = dict(bridge_config or {})
        self.state_file = state_file
        # Not self.dry_run: BaseOperator.dry_run() is a method (render the templates, run nothing).
        self.sync_dry_run = dry_run
        self.push = push
        self.pull = pull
        self.fail_on_errors = fail_on_errors

    def build_config(self, context: Mapping[str, Any]) -> BridgeConfig:
        from smsrelay_salesforce.config import config_from_mapping

        from smsrelay import ConfigError, read_yaml
        from smsrelay_airflow.hooks.sms import SmsHook

        data: dict[str, Any] = dict(self.bridge_config)
        lines: dict[str, int] = {}
        if self.config_file:
            parsed, lines = read_yaml(self.config_file)
            if not isinstance(parsed, Mapping):
                raise ConfigError("bridge.yaml must be a mapping of settings", file=self.config_file, line=1)
            data = dict(parsed)
        data.pop("salesforce", None)
        data.pop("sms", None)
        data["state_file"] = self.state_file or str(self._default_state(context))
        org = org_auth_from_connection(BaseHook.get_connection(self.salesforce_conn_id))
        sms = SmsHook(sms_conn_id=self.sms_conn_id).settings
        return config_from_mapping(data, source=self.config_file, lines=lines, org=org, sms=sms)

    def _default_state(self, context: Mapping[str, Any]) -> Path:
        home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
        ti = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or "dag"
        return home / "smsrelay-salesforce" / f"{dag_id}.{self.task_id}.db"

    def execute(self, context: Any) -> dict[str, Any]:
        from smsrelay_salesforce.sync import Bridge

        from smsrelay import AuthError, ConfigError, SmsRelayError

        try:
            config = self.build_config(context)
        except ConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        with Bridge(config) as bridge:
            try:
                summary = bridge.sync(dry_run=self.sync_dry_run, push=self.push, pull=self.pull)
            except (AuthError, ConfigError) as exc:
                raise AirflowFailException(str(exc)) from None
            except SmsRelayError as exc:
                raise AirflowException(str(exc)) from None
        self.log.info("smsrelay-salesforce: %s", summary.line())
        result = summary.to_dict()
        if summary.failures and self.fail_on_errors:
            raise AirflowException(f"smsrelay-salesforce: {summary.line()}; errors: {'; '.join(summary.errors[:5])}")
        return result
