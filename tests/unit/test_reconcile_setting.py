"""``reconcile_window`` and ``on_doubt`` as provider settings: kwargs, environment, YAML; the client uses them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from smsrelay import Client, ConfigError
from smsrelay.config import settings_from_env, settings_from_file, settings_from_mapping


def test_the_environment_sets_the_window_and_the_client_uses_it() -> None:
    env = {"SMSRELAY_PROVIDER": "sandbox", "SMSRELAY_RECONCILE_WINDOW": "5", "SMSRELAY_ON_DOUBT": "report"}
    with Client(env=env) as client:
        assert client.reconcile_window == timedelta(seconds=5)
        assert client.on_doubt == "report"


def test_the_provider_variable_wins_over_the_global_one() -> None:
    env = {"SMSRELAY_RECONCILE_WINDOW": "5", "SMSRELAY_SANDBOX_RECONCILE_WINDOW": "2.5"}
    assert settings_from_env(env, "sandbox").reconcile_window == 2.5


def test_an_explicit_argument_wins_and_the_default_stays_60_s() -> None:
    env = {"SMSRELAY_RECONCILE_WINDOW": "5"}
    with Client("sandbox", env=env, reconcile_window=1, on_doubt="report") as client:
        assert client.reconcile_window == timedelta(seconds=1) and client.on_doubt == "report"
    with Client("sandbox", env={}) as client:
        assert client.reconcile_window == timedelta(seconds=60) and client.on_doubt == "raise"


def test_a_yaml_file_sets_it_in_the_provider_section(tmp_path) -> None:
    path = tmp_path / "sms.yml"
    path.write_text("provider: sandbox\nsandbox:\n  reconcile_window: 3\n  on_doubt: resend\n", encoding="utf-8")
    settings = settings_from_file(path, env={})
    assert (settings.reconcile_window, settings.on_doubt) == (3.0, "resend")
    with Client(settings=settings) as client:
        assert client.reconcile_window == timedelta(seconds=3) and client.on_doubt == "resend"


@pytest.mark.parametrize(
    ("env", "field", "says"),
    [
        ({"SMSRELAY_RECONCILE_WINDOW": "soon"}, "SMSRELAY_RECONCILE_WINDOW", "expected a number"),
        ({"SMSRELAY_SANDBOX_RECONCILE_WINDOW": "-1"}, "SMSRELAY_SANDBOX_RECONCILE_WINDOW", "must not be negative"),
        ({"SMSRELAY_ON_DOUBT": "retry"}, "SMSRELAY_ON_DOUBT", "must be one of raise, report, resend"),
    ],
)
def test_a_bad_variable_is_an_error_naming_it(env: dict[str, str], field: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_env(env, "sandbox")
    assert err.value.field == field and says in err.value.detail


def test_a_bad_yaml_value_names_its_key_and_line(tmp_path) -> None:
    path = tmp_path / "sms.yml"
    path.write_text("provider: sandbox\nsandbox:\n  reconcile_window: a minute\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        settings_from_file(path, env={})
    assert (err.value.field, err.value.line) == ("sandbox.reconcile_window", 3)


def test_a_bad_keyword_names_it() -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_mapping({"on_doubt": "ignore"}, "sandbox", env={})
    assert err.value.field == "on_doubt"
