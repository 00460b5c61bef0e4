"""The org emulator run standalone, as an admin would to try bridge.yaml offline."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests


@pytest.mark.slow  # a subprocess that generates an RSA key and a CA
def test_standalone_emulator_prints_how_to_connect_and_serves_https(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsrelay_salesforce.testing", "--state-dir", str(tmp_path), "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = {}
        for _ in range(10):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            m = re.match(r"\s*([\w ()]+?):\s+(.+)", line)
            if m:
                lines[m.group(1)] = m.group(2).split()[0] if m.group(1) != "ignored (UI)" else m.group(2)
        url, token, ca = lines["instance_url"], lines["access_token"], lines["CA bundle"]
        assert url.startswith("https://127.0.0.1:")
        # It names the UI metadata it loads but does not enforce.
        assert "1 Lightning apps (SMS_Relay)" in lines["ignored (UI)"] and "quick actions" in lines["ignored (UI)"]
        assert ca == str(tmp_path / "ca.pem")
        assert (tmp_path / "server.key").exists() and (tmp_path / "server.crt").exists()
        s = requests.Session()
        s.trust_env = False
        s.verify = ca
        resp = s.get(
            url + "/services/data/v59.0/query",
            params={"q": "SELECT To__c, Contact__r.FirstName FROM SMS_Message__c WHERE Status__c = 'Queued'"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200
        body = resp.json()
        assert body["totalSize"] == 3
        assert body["records"][0]["Contact__r"]["FirstName"] == "Demo1"
        assert resp.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
