"""The shipped metadata converts with the real Salesforce CLI, offline, and the org emulator loads it.

``sf project convert source`` (npm's ``@salesforce/cli``, on the Node 22 from npm, both pinned
by ``salesforce_bridge/sfcli/package-lock.json`` and installed by ``make sfcli``) parses every
source file, resolves each to its Metadata API type and writes the package a deploy sends.
Salesforce CLI reference, project convert source: "Convert source-formatted files into
metadata that you can deploy using Metadata API". The test skips only when npm is missing.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from smsrelay_salesforce.testing import OrgEmulator

ROOT = pathlib.Path(__file__).resolve().parents[2]
SFCLI = ROOT / "salesforce_bridge" / "sfcli"
METADATA = ROOT / "salesforce_bridge" / "metadata"
NS = "{http://soap.sforce.com/2006/04/metadata}"


def _sf_bin() -> pathlib.Path:
    bin_dir = SFCLI / "node_modules" / ".bin"
    if not (bin_dir / "sf").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: make sfcli installs the Salesforce CLI and Node 22 from npm")
        # The same locked install make sfcli runs, for a checkout that skipped it.
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SFCLI, check=True, timeout=900)
    return bin_dir


def _env(bin_dir: pathlib.Path, home: pathlib.Path) -> dict[str, str]:
    # npm's Node first on PATH (sf's launcher runs `node`), a throwaway HOME for sf's config,
    # and no telemetry or update checks: the conversion needs no network.
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "SF_DISABLE_TELEMETRY": "true",
        "SF_AUTOUPDATE_DISABLE": "true",
        # What this sf's @oclif/plugin-update reads (dist/hooks/init.js: scopedEnvVarTrue("DISABLE_AUTOUPDATE")):
        # without it, every sf call spawns a detached `sf update --autoupdate` that outlives the test.
        "SF_DISABLE_AUTOUPDATE": "true",
        "SF_SKIP_NEW_VERSION_CHECK": "true",
    }


def _package(path: pathlib.Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for t in ET.parse(path).getroot().iter(f"{NS}types"):
        name = t.findtext(f"{NS}name") or ""
        out[name] = {m.text or "" for m in t.iter(f"{NS}members")}
    return out


def test_sf_converts_the_app_and_the_emulator_names_what_it_ignores(tmp_path) -> None:
    bin_dir = _sf_bin()
    env = _env(bin_dir, tmp_path / "home")
    node = subprocess.run([str(bin_dir / "node"), "--version"], capture_output=True, text=True, env=env, check=True)
    major, minor = (int(x) for x in node.stdout.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= (22, 19), f"sf needs Node >= 22.19, npm gave {node.stdout.strip()}"
    out = tmp_path / "mdapi"
    convert = ["project", "convert", "source", "--root-dir", "force-app", "--output-dir", str(out), "--json"]
    done = subprocess.run(
        [str(bin_dir / "sf"), *convert],
        cwd=METADATA,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    print(done.stdout)
    result = json.loads(done.stdout)
    assert done.returncode == 0 and result["status"] == 0 and not result.get("warnings"), done.stdout + done.stderr
    package = _package(out / "package.xml")
    assert package["CustomApplication"] == {"SMS_Relay"}
    assert package["CustomTab"] == {"SMS_Message__c", "SMS_Link_Hit__c", "SMS_Consent__c"}
    assert {"Contact-SMS Relay Contact Layout", "Lead-SMS Relay Lead Layout"} <= package["Layout"]
    assert {"SMS_Message__c.SMS_Compact", "SMS_Consent__c.SMS_Compact"} <= package["CompactLayout"]
    assert package["QuickAction"] == {"Contact.Send_SMS", "Lead.Send_SMS"}
    assert package["Flow"] == {"SMS_Case_Closed_Survey"}
    assert package["PermissionSet"] == {"SMS_User", "SMS_Admin", "SMS_Relay_Integration"}
    assert package["ReportType"] == {"SMS_Messages_with_Link_Hits"}
    assert len(package["Report"] - {"SMS_Relay_Reports/"}) == 3
    assert {"Contact.SMS_Opt_Out__c", "Lead.SMS_Opt_Out__c"} <= package["CustomField"]
    # Standard objects gain fields only: a deploy must not carry a CustomObject for Contact or Lead.
    assert package["CustomObject"] == {"SMS_Message__c", "SMS_Link_Hit__c", "SMS_Consent__c"}

    # The emulator reads the same files: every object and field sf packaged, and names the rest.
    org = OrgEmulator(metadata_dir=METADATA)
    for member in package["CustomField"]:
        obj, field = member.split(".")
        assert org.schema.object(obj).has(field), member
    ignored = org.ignored_metadata
    assert set(ignored["applications"]) == package["CustomApplication"]
    assert set(ignored["quickActions"]) == package["QuickAction"]
    assert set(ignored["flows"]) == package["Flow"]
    assert set(ignored["permissionsets"]) == package["PermissionSet"]
    assert set(ignored["layouts"]) == package["Layout"]
    assert set(ignored["tabs"]) == package["CustomTab"]
    assert set(ignored["reports"]) >= {m.split("/")[-1] for m in package["Report"] if m.split("/")[-1]}
