"""Both Kudosity emulators fuzzed with schemathesis from the vendor's OpenAPI descriptions.

Bounded and seeded, so a run is short and repeatable: every response must validate
against the spec, and every request the spec calls invalid must get a 4xx, never a
5xx. Only the operations each emulator serves are run (the V2 spec also describes
WhatsApp, RCS and MMS). Where the spec contradicts its own text, the copy used here is
corrected, and each correction says why.

Checks left out, and why: ``positive_data_acceptance`` (the emulators keep the API's
business rules: an unknown sender or message id is a 400 though the schema allows any
string) and ``status_code_conformance`` (the specs document only 200/400, while the
API also answers 401, 404 and 429). V1 runs against the spec as observed, the one
``test_kudosity_openapi`` holds the emulator to, with each deviation explained there.
"""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import requests
import yaml

from smsrelay import ManualClock
from smsrelay.emulators.kudosity_v1 import KudosityV1Emulator
from smsrelay.emulators.kudosity_v2 import KudosityV2Emulator
from tests.conformance.test_kudosity_openapi import v1_spec_as_observed

HERE = pathlib.Path(__file__).parent / "kudosity"
CHECKS = "not_a_server_error,response_schema_conformance,negative_data_rejection,content_type_conformance"
V2_KEY = "kv2-schemathesis-0123456789"
V1_KEY, V1_SECRET = "kv1schemathesis01", "kv1secretschemathesis01"


def v2_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((HERE / "transmit-message-api-v2.openapi.yaml").read_text())
    spec = copy.deepcopy(spec)
    rate = spec["components"]["schemas"]["WebhookRequest"]["properties"]["rate_limit"]
    # The schema states the range only as x-oapi-codegen-extra-tags "range(0|10000)", and its own
    # 400 example is "rate_limit: greater than the maximum value of 10000": the API enforces it.
    rate.update(minimum=0, maximum=10000)
    return spec


def v1_spec() -> dict[str, Any]:
    spec = v1_spec_as_observed()
    # With none of its alternative filters, get-sms-responses has no body at all: the last 30
    # days are listed (Kudosity docs, https://github.com/kudosity/kudosity-dev-docs), so the body
    # cannot be required either.
    spec["paths"]["/get-sms-responses.json"]["post"]["requestBody"]["required"] = False
    return spec


def schemathesis(spec: dict[str, Any], url: str, auth: list[str], paths: str, tmp: pathlib.Path) -> str:
    location = tmp / "openapi.json"
    location.write_text(json.dumps(spec))
    cmd = [
        *(sys.executable, "-m", "schemathesis.cli", "run", str(location), "--url", url, *auth),
        *("--include-path-regex", paths, "--checks", CHECKS, "--phases", "examples,coverage,fuzzing"),
        *("--max-examples", "12", "--seed", "20261206", "--workers", "1", "--generation-database", "none"),
        *("--no-color", "--request-timeout", "10", "--max-failures", "20"),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    return run.stdout


@pytest.mark.xdist_group("schemathesis")
def test_the_v2_emulator_keeps_to_its_openapi_description(tmp_path: pathlib.Path) -> None:
    with KudosityV2Emulator(clock=ManualClock(), api_keys=(V2_KEY,)) as emu:
        out = schemathesis(v2_spec(), emu.url, ["-H", f"x-api-key: {V2_KEY}"], r"^/v2/(sms|webhook)", tmp_path)
    assert "Tested: 8" in out  # /v2/sms (GET, POST), /v2/sms/{id}, /v2/webhook (4 + GET by id)


@pytest.mark.xdist_group("schemathesis")
def test_the_v1_emulator_keeps_to_its_openapi_description(tmp_path: pathlib.Path) -> None:
    served = r"^/(send-sms|cancel-sms|get-sms-sent|get-sms-stats|get-sms-responses|get-balance|format-number)\.json$"
    with KudosityV1Emulator(clock=ManualClock(), credentials={V1_KEY: V1_SECRET}) as emu:
        out = schemathesis(v1_spec(), emu.url, ["-a", f"{V1_KEY}:{V1_SECRET}"], served, tmp_path)
    assert "Tested: 7" in out


@pytest.mark.parametrize(
    "extra",
    [
        {"filter": "str"},
        {"filter": [1]},
        {"filter": None},
        {"event_type": ["x"]},
        {"rate_limit": True},
        {"rate_limit": 10001},
        {"filter": {"sender": "61491570017"}},
        {"filter": {"event_type": ["SMS_STATUS", 1]}},
        {"is_sandbox": "no"},
    ],
    ids=repr,
)
def test_webhook_bodies_the_spec_refuses_are_a_400_and_store_nothing(extra: dict[str, Any]) -> None:
    body = {"name": "hook", "url": "https://example.com/hook", **extra}
    with KudosityV2Emulator(clock=ManualClock(), api_keys=(V2_KEY,)) as emu:
        for method, path in (("POST", "/v2/webhook"), ("PUT", f"/v2/webhook/{_hook(emu)}")):
            resp = requests.request(method, emu.url + path, json=body, headers={"x-api-key": V2_KEY}, timeout=10)
            assert resp.status_code == 400 and resp.json()["error"].startswith("Validation Error")
        assert len(emu.webhooks) == 1  # only the valid one _hook registered


def _hook(emu: KudosityV2Emulator) -> str:
    valid = {"name": "hook", "url": "https://example.com/hook", "filter": {"sender": ["61491570017"]}}
    resp = requests.post(emu.url + "/v2/webhook", json=valid, headers={"x-api-key": V2_KEY}, timeout=10)
    assert resp.status_code == 201
    return str(resp.json()["id"])
