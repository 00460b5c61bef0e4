"""The app metadata names only fields and objects the shipped object model has.

``sf project convert source`` checks each file's type and place, not what it refers to; a
deploy would. So this test reads every layout, compact layout, related list, quick action,
Flow, permission set, report type, report and app, and checks each field and object it
names against the metadata's own object model (the one the org emulator serves).
"""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET

import pytest
from smsrelay_salesforce.schema import load_schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ROOT / "salesforce_bridge" / "metadata" / "force-app" / "main" / "default"
NS = "{http://soap.sforce.com/2006/04/metadata}"
SCHEMA = load_schema(ROOT / "salesforce_bridge" / "metadata")
# Standard fields the layouts show that the emulator's model leaves out (it models what the
# bridge reads); they exist in every org (Salesforce Object Reference, Contact and Lead).
STANDARD = {"Contact": {"Title"}, "Lead": {"Title"}}
# Salesforce Help, "Field Permissions": a required field is always visible and editable, and a
# permission set may not carry a field permission for it (the deploy fails).


def _has(obj: str, field: str) -> bool:
    return (SCHEMA.has(obj) and SCHEMA.object(obj).has(field)) or field in STANDARD.get(obj, set())


def _texts(path: pathlib.Path, tag: str) -> list[str]:
    return [e.text or "" for e in ET.parse(path).getroot().iter(NS + tag)]


def _files(pattern: str) -> list[pathlib.Path]:
    found = sorted(APP.glob(pattern))
    assert found, pattern
    return found


@pytest.mark.parametrize("path", _files("layouts/*.layout-meta.xml"), ids=lambda p: p.name)
def test_layout_fields_and_related_lists_exist(path: pathlib.Path) -> None:
    obj = path.name.split("-", 1)[0]
    root = ET.parse(path).getroot()
    for item in root.iter(NS + "layoutItems"):
        field = item.findtext(NS + "field")
        assert field and _has(obj, field), f"{path.name}: {obj}.{field}"
    for rl in root.iter(NS + "relatedLists"):
        name = rl.findtext(NS + "relatedList") or ""
        child, _, lookup = name.partition(".")
        if not lookup:
            continue  # a standard related list (none ship)
        assert _has(child, lookup), f"{path.name}: related list {name}"
        assert obj in SCHEMA.object(child).field(lookup).reference_to, f"{path.name}: {name} does not point at {obj}"
        for col in _texts_of(rl, "fields"):
            assert col == "NAME" or _has(child, col), f"{path.name}: {child}.{col}"


def _texts_of(el: ET.Element, tag: str) -> list[str]:
    return [e.text or "" for e in el.findall(NS + tag)]


@pytest.mark.parametrize("path", _files("objects/*/compactLayouts/*.xml"), ids=lambda p: p.name)
def test_compact_layout_fields_exist(path: pathlib.Path) -> None:
    obj = path.parent.parent.name
    for field in _texts(path, "fields"):
        assert _has(obj, field), f"{obj}.{field}"
    assert (
        f"<compactLayoutAssignment>{path.name.split('.')[0]}<"
        in (path.parent.parent / f"{obj}.object-meta.xml").read_text()
    )


@pytest.mark.parametrize("path", _files("quickActions/*.xml"), ids=lambda p: p.name)
def test_quick_action_targets_and_fields_exist(path: pathlib.Path) -> None:
    root = ET.parse(path).getroot()
    parent = path.name.split(".")[0]
    target = root.findtext(NS + "targetObject") or ""
    parent_field = root.findtext(NS + "targetParentField") or ""
    assert parent in SCHEMA.object(target).field(parent_field).reference_to
    for field in _texts(path, "field"):
        assert _has(target, field), f"{target}.{field}"
    for override in root.iter(NS + "fieldOverrides"):
        formula = override.findtext(NS + "formula")
        if formula:
            obj, _, field = formula.partition(".")
            assert obj == parent and _has(parent, field), formula
        literal = override.findtext(NS + "literalValue")
        if literal:
            f = SCHEMA.object(target).field(override.findtext(NS + "field") or "")
            assert literal in f.picklist_values, f"{f.name} has no value {literal}"


def test_the_flow_creates_records_with_fields_that_exist() -> None:
    (path,) = _files("flows/*.flow-meta.xml")
    root = ET.parse(path).getroot()
    assert root.findtext(NS + "status") == "Draft"  # an example: an admin reviews and activates it
    for create in root.iter(NS + "recordCreates"):
        obj = create.findtext(NS + "object") or ""
        for assign in create.iter(NS + "inputAssignments"):
            field = assign.findtext(NS + "field") or ""
            assert _has(obj, field), f"{obj}.{field}"
            literal = assign.findtext(f"{NS}value/{NS}stringValue")
            f = SCHEMA.object(obj).field(field)
            if literal and f.picklist_values:
                assert literal in f.picklist_values, f"{field} has no value {literal}"


@pytest.mark.parametrize("path", _files("permissionsets/*.xml"), ids=lambda p: p.name)
def test_permission_sets_name_existing_optional_fields_and_objects(path: pathlib.Path) -> None:
    root = ET.parse(path).getroot()
    for fp in root.iter(NS + "fieldPermissions"):
        obj, _, field = (fp.findtext(NS + "field") or "").partition(".")
        assert _has(obj, field), f"{path.name}: {obj}.{field}"
        assert not SCHEMA.object(obj).field(field).required, f"{path.name}: {obj}.{field} is required"
    for op in root.iter(NS + "objectPermissions"):
        assert SCHEMA.has(op.findtext(NS + "object") or ""), path.name
    for tab in _texts(path, "tab"):
        assert (APP / "tabs" / f"{tab}.tab-meta.xml").exists(), f"{path.name}: tab {tab}"
    for app in _texts(path, "application"):
        assert (APP / "applications" / f"{app}.app-meta.xml").exists(), f"{path.name}: app {app}"


def test_the_app_shows_the_shipped_tabs() -> None:
    (path,) = _files("applications/*.app-meta.xml")
    custom = [t for t in _texts(path, "tabs") if not t.startswith("standard-")]
    assert custom and all((APP / "tabs" / f"{t}.tab-meta.xml").exists() for t in custom)


def test_the_report_type_and_reports_name_existing_fields() -> None:
    (rt,) = _files("reportTypes/*.xml")
    root = ET.parse(rt).getroot()
    base = root.findtext(NS + "baseObject") or ""
    rel = root.findtext(f"{NS}join/{NS}relationship") or ""
    # A child relationship's name is the lookup's <relationshipName> plus __r (Link_Hits__r).
    child = next(
        f.parent.parent.name
        for f in APP.glob("objects/*/fields/*.field-meta.xml")
        if _texts(f, "relationshipName") == [rel.removesuffix("__r")] and _texts(f, "referenceTo") == [base]
    )
    tables = {base: base, f"{base}.{rel}": child}
    for col in root.iter(NS + "columns"):
        table = tables[col.findtext(NS + "table") or ""]
        field = col.findtext(NS + "field") or ""
        assert _has(table, field), f"{table}.{field}"
    reports = _files("reports/*/*.report-meta.xml")
    assert len(reports) == 3
    for path in reports:
        r = ET.parse(path).getroot()
        assert r.findtext(NS + "reportType") == f"{rt.name.split('.')[0]}__c"
        for name in [*_texts(path, "field"), *_texts(path, "column"), *_texts(path, "dateColumn")]:
            table, _, field = name.partition("$")
            assert _has(tables[table], field), f"{path.name}: {name}"
