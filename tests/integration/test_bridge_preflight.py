"""Validate before any write: ``sync`` runs what ``check`` runs before it claims a record.

Each case is one issue 15 measured: a mapping field of the wrong type, a misspelt field in
the template or the filter, ``NOW`` for ``{now}``, and a provider key the provider refuses.
In each, ``sync --once`` exits 2 (3 for a refused sign-in), names the key, and no record is
claimed, changed or sent.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from smsrelay_salesforce.cli import main

from tests.fixtures.bridge import bridge_mapping
from tests.fixtures.kudosity import SENDER, V2_KEY
from tests.integration.test_bridge_cli import write_config

MSG = "SMS_Message__c"


def _queue(org: Any) -> list[str]:
    return org.insert(MSG, [{"To__c": f"+6149157015{i}", "Body__c": "Hi", "Status__c": "Queued"} for i in range(3)])


def _untouched(org: Any, ids: list[str]) -> None:
    rows = {r["Id"]: r for r in org.records(MSG)}
    for i in ids:
        assert rows[i]["Status__c"] == "Queued" and not rows[i]["Attempts__c"] and not rows[i]["Send_Key__c"]


def _sync(org: Any, ca: pathlib.Path, tmp: pathlib.Path, monkeypatch: Any, **overrides: Any) -> int:
    monkeypatch.setenv("SF_TEST_TOKEN", org.issue_token())
    return main(["sync", "--once", "-c", str(write_config(org, ca, tmp, **overrides))])


def test_a_number_field_mapped_as_the_phone_exits_2_and_claims_nothing(
    sf_org, sf_tls, tmp_path, capsys, monkeypatch
) -> None:
    ids = _queue(sf_org)
    code = _sync(sf_org, sf_tls.ca_path, tmp_path, monkeypatch, mapping={"message": {"fields": {"to": "Attempts__c"}}})
    assert code == 2
    err = capsys.readouterr().err
    assert "mapping.message.fields.to: SMS_Message__c.Attempts__c is a double field" in err
    assert "nothing was claimed or changed" in err
    _untouched(sf_org, ids)


def test_a_misspelt_template_field_exits_2_naming_send_template(sf_org, sf_tls, tmp_path, capsys, monkeypatch) -> None:
    ids = _queue(sf_org)
    assert _sync(sf_org, sf_tls.ca_path, tmp_path, monkeypatch, send={"template": "{{ Bdy__c }}"}) == 2
    assert "send.template: SMS_Message__c.Bdy__c does not exist" in capsys.readouterr().err
    _untouched(sf_org, ids)


def test_a_misspelt_filter_field_exits_2_with_salesforces_reason(sf_org, sf_tls, tmp_path, capsys, monkeypatch) -> None:
    ids = _queue(sf_org)
    where = "Stauts__c = 'Queued' AND Direction__c = 'Outbound'"
    assert _sync(sf_org, sf_tls.ca_path, tmp_path, monkeypatch, send={"where": where}) == 2
    err = capsys.readouterr().err
    assert "send.where" in err and "INVALID_FIELD" in err and "Stauts__c" in err
    _untouched(sf_org, ids)


def test_now_instead_of_the_now_placeholder_is_refused_before_any_claim(
    sf_org, sf_tls, tmp_path, capsys, monkeypatch
) -> None:
    ids = _queue(sf_org)
    where = "Status__c = 'Queued' AND (Send_At__c = null OR Send_At__c <= NOW)"
    assert _sync(sf_org, sf_tls.ca_path, tmp_path, monkeypatch, send={"where": where}) == 2
    err = capsys.readouterr().err
    assert "send.where" in err and ("MALFORMED_QUERY" in err or "INVALID_FIELD" in err)
    _untouched(sf_org, ids)
    # check says the same, so an admin finds it before the first sync.
    assert main(["check", "-c", str(tmp_path / "bridge.yaml")]) == 1
    assert "send.where" in capsys.readouterr().out


def test_a_refused_provider_key_exits_3_and_claims_nothing(
    sf_org, sf_tls, tmp_path, capsys, monkeypatch, kudosity_v2_emulator
) -> None:
    ids = _queue(sf_org)
    monkeypatch.setenv("KUDOSITY_KEY", "not-" + V2_KEY)
    data = bridge_mapping(sf_org, sf_tls.ca_path, tmp_path)
    data["sms"] = {
        "provider": "kudosity",
        "api": "v2",
        "api_key": "${KUDOSITY_KEY}",
        "base_url": kudosity_v2_emulator.url,
        "sender": SENDER,
        "timeout": 5,
    }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SF_TEST_TOKEN", sf_org.issue_token())
    assert main(["sync", "--once", "-c", str(path)]) == 3
    _untouched(sf_org, ids)
    assert kudosity_v2_emulator.received("POST", "/v2/sms") == []


def test_a_good_config_costs_a_few_calls_once_per_bridge(make_bridge, queue_messages, sf_org) -> None:
    queue_messages(2)
    bridge = make_bridge()
    first = bridge.sync()
    # Five describes (the three SMS objects, Contact, Lead) and the LIMIT 0 probe.
    assert first.sent == 2 and first.calls.get("check", 0) == 6
    assert "check" not in bridge.sync().calls
