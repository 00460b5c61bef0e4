"""bridge.yaml: validation errors name the key and the line; secrets only by reference; the
default mapping matches the shipped metadata."""

from __future__ import annotations

import pathlib

import pytest
from smsrelay_salesforce.config import (
    DEFAULT_FIELDS,
    DEFAULT_OBJECTS,
    EXTERNAL_IDS,
    FIELD_TYPES,
    config_from_mapping,
    load_config,
)
from smsrelay_salesforce.schema import load_schema

from smsrelay.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
METADATA = ROOT / "salesforce_bridge" / "metadata"
TOKEN = {"auth": "token", "instance_url": "https://acme.my.salesforce.com", "access_token": "${SF_TOKEN}"}
ENV = {"SF_TOKEN": "00Dxx0000001gPL!AQ0AQH0dMHZfz972Szmpkb58urFRkgeBGsxL", "KUDOSITY_KEY": "k-live-123456"}


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return path


def test_every_field_of_the_default_mapping_exists_in_the_metadata_with_a_compatible_type() -> None:
    schema = load_schema(METADATA, standard=True)
    for logical, fields in DEFAULT_FIELDS.items():
        obj = schema.object(DEFAULT_OBJECTS[logical])
        for name, api in fields.items():
            assert obj.has(api), f"{obj.name}.{api} (mapping {logical}.{name}) is not in the metadata"
            field = obj.field(api)
            assert field.type in FIELD_TYPES[name], (
                f"{obj.name}.{api} is {field.type}, mapping wants {FIELD_TYPES[name]}"
            )
            if (logical, name) in EXTERNAL_IDS:
                assert field.external_id and field.unique, f"{obj.name}.{api} must be a unique External ID"


def test_the_metadata_keeps_hand_off_and_delivery_status_apart_with_a_list_view_per_status() -> None:
    schema = load_schema(METADATA, standard=True)
    msg = schema.object("SMS_Message__c")
    handoff = set(msg.field("Status__c").picklist_values)
    assert {"Queued", "Sending", "Sent", "Skipped_Opted_Out", "Rejected"} <= handoff
    assert "Delivered" in msg.field("Delivery_Status__c").picklist_values and "Delivered" not in handoff
    views = {
        p.stem.split(".")[0] for p in (METADATA / "force-app/main/default/objects/SMS_Message__c/listViews").iterdir()
    }
    assert handoff <= views
    assert msg.field("Link_Hits__c").summary is not None
    perm = (METADATA / "force-app/main/default/permissionsets/SMS_Relay_Integration.permissionset-meta.xml").read_text()
    assert "<object>SMS_Consent__c</object>" in perm


def test_defaults_are_the_documented_ones() -> None:
    cfg = config_from_mapping({"salesforce": TOKEN}, env=ENV)
    assert cfg.limits.bulk_threshold == 2000 and cfg.limits.api_ceiling == 0.9 and cfg.limits.batch_size == 200
    assert "Send_At__c = null OR Send_At__c <= {now}" in cfg.send.where
    assert cfg.sms.provider == "sandbox"
    assert "00Dxx" not in repr(cfg.org)


def test_an_error_names_the_key_the_file_and_the_line(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        "salesforce:\n  auth: token\n  instance_url: https://x\n  access_token: ${SF_TOKEN}\n"
        "limits:\n  batch_size: 500\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=ENV)
    assert exc.value.field == "limits.batch_size" and exc.value.line == 6
    assert "between 1 and 200" in str(exc.value) and f"{path}:6" in str(exc.value)


def test_an_unknown_key_is_an_error_with_its_line(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        "salesforce:\n  auth: token\n  instance_url: https://x\n  access_token: ${SF_TOKEN}\nsned:\n  country: AU\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, env=ENV)
    assert exc.value.field == "sned" and exc.value.line == 5


def test_username_and_password_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="SOAP login"):
        config_from_mapping({"salesforce": {"auth": "password"}}, env=ENV)


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ({"auth": "jwt", "domain": "acme.my", "consumer_key": "k", "username": "u@x"}, "salesforce.private_key_file"),
        ({"auth": "client_credentials", "domain": "acme.my", "consumer_key": "k"}, "salesforce.consumer_secret"),
        ({"auth": "client_credentials", "consumer_key": "k", "consumer_secret": "${SF_TOKEN}"}, "salesforce.domain"),
        ({"auth": "token", "access_token": "${SF_TOKEN}"}, "salesforce.instance_url"),
    ],
)
def test_each_auth_method_names_what_it_is_missing(auth: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"salesforce": auth}, env=ENV)
    assert exc.value.field == missing


def test_a_literal_secret_is_refused_and_not_echoed() -> None:
    secret = "very-secret-consumer-value"
    with pytest.raises(ConfigError) as exc:
        config_from_mapping(
            {
                "salesforce": {
                    "auth": "client_credentials",
                    "domain": "acme.my",
                    "consumer_key": "k",
                    "consumer_secret": secret,
                }
            },
            env=ENV,
        )
    assert exc.value.field == "salesforce.consumer_secret"
    assert secret not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({"salesforce": TOKEN, "sms": {"provider": "kudosity", "api_key": "k-live-123456"}}, env=ENV)
    assert exc.value.field == "sms.api_key" and "k-live-123456" not in str(exc.value)


def test_provider_credentials_come_from_the_environment() -> None:
    cfg = config_from_mapping(
        {"salesforce": TOKEN, "sms": {"provider": "kudosity", "api_key": "${KUDOSITY_KEY}"}}, env=ENV
    )
    assert cfg.sms.provider == "kudosity" and cfg.sms.api_key == "k-live-123456"
    with pytest.raises(ConfigError, match=r"\$\{NOPE\}"):
        config_from_mapping({"salesforce": TOKEN, "sms": {"provider": "kudosity", "api_key": "${NOPE}"}}, env=ENV)


def test_jwt_with_my_domain_builds_the_login_url(tmp_path: pathlib.Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    cfg = config_from_mapping(
        {
            "salesforce": {
                "auth": "jwt",
                "domain": "acme.my",
                "consumer_key": "k",
                "username": "u@x",
                "private_key_file": str(key),
            }
        },
        env=ENV,
    )
    assert cfg.org.login_url == "https://acme.my.salesforce.com"
    with pytest.raises(ConfigError, match="My Domain"):
        config_from_mapping(
            {
                "salesforce": {
                    "auth": "jwt",
                    "domain": "login",
                    "consumer_key": "k",
                    "username": "u",
                    "private_key_file": str(key),
                }
            },
            env=ENV,
        )


def test_mapping_template_and_defaults_are_validated() -> None:
    base = {"salesforce": TOKEN}
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "mapping": {"message": {"fields": {"to": "To Phone"}}}}, env=ENV)
    assert exc.value.field == "mapping.message.fields.to"
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "mapping": {"message": {"fields": {"tu": "To__c"}}}}, env=ENV)
    assert exc.value.field == "mapping.message.fields.tu"
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "mapping": {"message": {"fields": {"send_key": None}}}}, env=ENV)
    assert "cannot be left out" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "send": {"template": "Hi {{ Contact__r.FirstName "}}, env=ENV)
    assert exc.value.field == "send.template" and "syntax error" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "send": {"where": "Status__c = 'Queued' LIMIT 5"}}, env=ENV)
    assert exc.value.field == "send.where"
    with pytest.raises(ConfigError) as exc:
        config_from_mapping({**base, "send": {"users": {"005xx": {"country": "Australia"}}}}, env=ENV)
    assert exc.value.field == "send.users.005xx.country"
    cfg = config_from_mapping(
        {
            **base,
            "send": {"country": "au", "users": {"005xx": {"sender": "Sales", "country": "nz"}}},
            "limits": {"api_ceiling": "80%"},
        },
        env=ENV,
    )
    assert cfg.send.country == "AU" and cfg.send.users["005xx"].country == "NZ" and cfg.limits.api_ceiling == 0.8


def test_the_phone_takes_relationship_paths_in_a_fallback_order_and_person_fields() -> None:
    paths = ["To__c", "Contact__r.MobilePhone", "Lead__r.MobilePhone"]
    cfg = config_from_mapping(
        {"salesforce": TOKEN, "mapping": {"message": {"fields": {"to": paths}}, "person": {"opt_out": None}}}, env=ENV
    )
    assert cfg.mapping.message.paths("to") == tuple(paths) and cfg.mapping.message.f("to") == "To__c"
    assert cfg.mapping.person.opt_out is None and cfg.mapping.person.mobile == "MobilePhone"
    assert config_from_mapping({"salesforce": TOKEN}, env=ENV).mapping.person.opt_out == "SMS_Opt_Out__c"
    for bad, why in (
        ({"to": ["To__c", "To__c"]}, "names a field twice"),
        ({"to": []}, "needs at least one field"),
        ({"to": "Contact__r..MobilePhone"}, "relationship path"),
        ({"body": "Contact__r.Description"}, "must be a field API name"),
    ):
        with pytest.raises(ConfigError, match=why):
            config_from_mapping({"salesforce": TOKEN, "mapping": {"message": {"fields": bad}}}, env=ENV)
    with pytest.raises(ConfigError, match=r"mapping\.person\.opt_out"):
        config_from_mapping({"salesforce": TOKEN, "mapping": {"person": {"opt_out": 3}}}, env=ENV)


def test_the_person_opt_out_field_ships_on_contact_and_lead() -> None:
    schema = load_schema(METADATA)
    for obj in ("Contact", "Lead"):
        assert schema.object(obj).field("SMS_Opt_Out__c").type == "boolean"
