"""The org emulator's round trip: ``latency`` (± ``jitter``) passes on its clock before each answer,
so a bridge run against it costs what the calls would cost against a real org."""

from __future__ import annotations

import io

import pytest
import requests
from smsrelay_salesforce.testing import main, serve


def _query(org, ca, token) -> requests.Response:
    s = requests.Session()
    s.trust_env, s.verify = False, str(ca)
    return s.get(
        org.url + "/services/data/v59.0/query",
        params={"q": "SELECT Id FROM SMS_Message__c"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_each_answer_waits_the_latency_on_the_emulator_clock(sf_org_factory, sf_tls, clock) -> None:
    org = sf_org_factory(latency=0.15, jitter=0.05, seed=7)
    token = org.issue_token()
    start = clock.now()
    for _ in range(4):
        assert _query(org, sf_tls.ca_path, token).status_code == 200
    waited = (clock.now() - start).total_seconds()
    assert 4 * 0.10 <= waited <= 4 * 0.20  # four answers, each 150 ms ± 50 ms
    assert org.stats()["latency"] == 0.15 and org.stats()["jitter"] == 0.05
    # The emulator's own handling is counted apart from the latency it waits.
    assert 0 < org.serve_seconds < waited


def test_no_latency_by_default(sf_org, sf_tls, clock) -> None:
    start = clock.now()
    assert _query(sf_org, sf_tls.ca_path, sf_org.issue_token()).status_code == 200
    assert clock.now() == start


def test_standalone_latency_is_announced_and_a_bad_value_is_refused(tmp_path, capsys) -> None:
    out = io.StringIO()
    org = serve(state_dir=tmp_path, out=out, latency=0.15, jitter=0.03)
    try:
        assert org.latency == 0.15 and org.jitter == 0.03
        assert "latency:          150 ms ± 30 ms per answer" in out.getvalue()
    finally:
        org.stop()
    with pytest.raises(SystemExit) as exc:
        main(["--latency", "soon"])
    assert exc.value.code == 2 and "--latency" in capsys.readouterr().err
