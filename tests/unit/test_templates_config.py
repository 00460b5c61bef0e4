import logging

import pytest

from smsrelay import Client, ConfigError, TemplateError, redact
from smsrelay.config import load_settings, settings_from_env, settings_from_file
from smsrelay.templates import render


def test_missing_variable_names_variable_and_recipient():
    with pytest.raises(TemplateError) as info:
        render("Hi {{ first_name }}", {}, recipient="+61491570156")
    assert "'first_name' is undefined" in str(info.value)
    assert "+61491570156" in str(info.value)


def test_template_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        render("ok\n{{ broken", {})


def test_templates_are_sandboxed():
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_yaml_settings_with_env_reference(tmp_path):
    f = tmp_path / "smsrelay.yaml"
    f.write_text("provider: sandbox\ndefault_region: au\nsandbox:\n  path: ${SBX}\n  sent_after: 2\n")
    s = settings_from_file(f, env={"SBX": str(tmp_path / "x.db")})
    assert s.provider == "sandbox"
    assert s.default_region == "AU"
    assert s.option("path") == str(tmp_path / "x.db")
    assert s.option("sent_after") == 2.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("provider: sandbox\nsandbox:\n  pathh: x\n", "smsrelay.yaml:3, field 'sandbox.pathh': unknown setting"),
        (
            "provider: sandbox\nsandbox:\n  sent_after: soon\n",
            "smsrelay.yaml:3, field 'sandbox.sent_after': expected a number",
        ),
        ("provider: nope\n", "smsrelay.yaml:1, field 'provider': unknown provider 'nope'"),
        ("provider: sandbox\n  bad: [indent\n", "smsrelay.yaml:2: invalid YAML"),
        ("provider: sandbox\nsandbox:\n  path: ${MISSING}\n", "${MISSING}, but that environment variable is not set"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_yaml_names_file_line_and_field(tmp_path, text, needle):
    f = tmp_path / "smsrelay.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        settings_from_file(f, env={})
    assert needle in str(info.value)


def test_settings_from_environment():
    s = settings_from_env({"SMSRELAY_PROVIDER": "sandbox", "SMSRELAY_SANDBOX_SENT_AFTER": "3"})
    assert s.option("sent_after") == 3.0
    assert load_settings("sandbox", env={}, sender="Acme").sender == "Acme"


def test_secrets_never_in_repr_errors_or_logs(caplog):
    secret = "sk-live-0123456789abcdef"
    s = load_settings("sandbox", env={}, api_key=secret)
    assert secret not in repr(s)
    assert secret not in redact(f"GET https://api.example.com/?api_key={secret}")
    assert secret not in redact(f"Authorization: Bearer {secret}")
    err = ConfigError(f"the key {secret} was refused")
    assert secret not in str(err) and secret not in repr(err)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("smsrelay.test").warning(redact(f"x-api-key: {secret}"))
    assert secret not in caplog.text


def test_client_send_with_missing_variable_sends_nothing(sandbox):
    with pytest.raises(TemplateError):
        sandbox.send(["+61491570156", "+61491570157"], "Hi {{ name }}")
    assert sandbox.events().events == []


def test_over_long_message_is_refused_before_sending(sandbox):
    with pytest.raises(Exception, match="over sandbox's limit of 1600"):
        sandbox.send("+61491570156", "x" * 1601)
    assert sandbox.events().events == []


def test_invalid_number_among_valid_ones_rejects_only_it(sandbox):
    result = sandbox.send(["+61491570156", "not-a-number", "+61491570157"], "Hi")
    assert [r.status.value for r in result.results] == ["queued", "rejected", "queued"]
    assert "not-a-number" in result.results[1].error


def test_skip_invalid_sends_the_rest(sandbox):
    from smsrelay import Recipient

    result = sandbox.send(
        [Recipient("+61491570156", {"name": "Ann"}), Recipient("+61491570157")],
        "Hi {{ name }}",
        on_invalid="skip",
    )
    assert [r.status.value for r in result.results] == ["queued", "rejected"]
    assert "'name' is undefined" in result.results[1].error


def test_client_repr_hides_secrets():
    c = Client("sandbox", env={}, api_key="sk-zzzz-very-secret", path="/tmp/never-used.db")
    assert "very-secret" not in repr(c) and "very-secret" not in repr(c.provider)


def test_missing_credential_names_the_setting_and_its_variable(tmp_path):
    f = tmp_path / "smsrelay.yaml"
    f.write_text("provider: kudosity\n")
    with pytest.raises(ConfigError) as info:
        settings_from_file(f, env={})
    assert "kudosity needs api_key" in str(info.value)
    assert "SMSRELAY_KUDOSITY_API_KEY" in str(info.value)
