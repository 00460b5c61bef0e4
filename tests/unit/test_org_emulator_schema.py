"""The metadata loader behind the org emulator: DX source format into field types and constraints."""

from __future__ import annotations

import pytest
from smsrelay_salesforce.schema import SchemaError, default_metadata_dir, load_schema
from smsrelay_salesforce.testing import salesforce_id, to_18

NS = 'xmlns="http://soap.sforce.com/2006/04/metadata"'


def write_object(root, name, fields, name_field="<nameField><label>Name</label><type>Text</type></nameField>"):
    d = root / "force-app" / "main" / "default" / "objects" / name
    (d / "fields").mkdir(parents=True)
    (d / f"{name}.object-meta.xml").write_text(
        f'<?xml version="1.0"?><CustomObject {NS}><label>{name}</label>{name_field}</CustomObject>'
    )
    for fname, body in fields.items():
        (d / "fields" / f"{fname}.field-meta.xml").write_text(
            f'<?xml version="1.0"?><CustomField {NS}><fullName>{fname}</fullName>{body}</CustomField>'
        )


def test_generic_loader_reads_types_and_constraints(tmp_path):
    write_object(tmp_path, "Order__c", {
        "Code__c": "<type>Text</type><length>10</length><externalId>true</externalId><unique>true</unique>"
                   "<required>true</required>",
        "Qty__c": "<type>Number</type><precision>5</precision><scale>2</scale>",
        "Paid__c": "<type>Checkbox</type><defaultValue>true</defaultValue>",
        "Kind__c": "<type>Picklist</type><valueSet><valueSetDefinition><value><fullName>A</fullName>"
                   "<default>false</default></value><value><fullName>B</fullName><default>true</default></value>"
                   "</valueSetDefinition></valueSet>",
        "When__c": "<type>Date</type>",
        "Contact__c": "<type>Lookup</type><referenceTo>Contact</referenceTo>"
                      "<relationshipName>Orders</relationshipName>",
    })  # fmt: skip
    write_object(tmp_path, "Line__c", {
        "Order__c": "<type>MasterDetail</type><referenceTo>Order__c</referenceTo>",
    })  # fmt: skip
    write_object(tmp_path, "Contact", {"Loyalty__c": "<type>Text</type><length>20</length>"}, name_field="")
    schema = load_schema(tmp_path)
    order = schema.object("order__c")
    code = order.field("code__c")
    assert (code.type, code.length, code.required, code.external_id, code.unique) == ("string", 10, True, True, True)
    qty = order.field("Qty__c")
    assert (qty.type, qty.precision, qty.scale) == ("double", 5, 2)
    assert order.field("Paid__c").default is True
    kind = order.field("Kind__c")
    assert (kind.picklist_values, kind.default, kind.restricted_picklist) == (("A", "B"), "B", False)
    assert order.field("When__c").type == "date"
    lookup = order.field("Contact__c")
    assert (lookup.type, lookup.reference_to, lookup.relationship_name) == ("reference", ("Contact",), "Contact__r")
    assert order.relationship("contact__r") is lookup
    assert order.field("Name").required and order.has("OwnerId")
    line = schema.object("Line__c")
    assert line.field("Order__c").required and line.field("Order__c").master_detail
    assert not line.has("OwnerId")  # a detail record has no owner
    # Custom fields on a standard object extend it; key prefixes follow name order.
    assert schema.object("Contact").has("Loyalty__c") and schema.object("Contact").key_prefix == "003"
    assert (schema.object("Line__c").key_prefix, order.key_prefix) == ("a00", "a01")


def test_shipped_metadata_loads_with_the_bridges_objects():
    schema = load_schema(default_metadata_dir())
    msg = schema.object("SMS_Message__c")
    assert msg.field("Name").auto_number == "SMS-{00000000}"
    assert msg.field("Link_Hits__c").summary == ("count", "SMS_Link_Hit__c", "Message__c", None)
    assert msg.field("Status__c").restricted_picklist and msg.field("Status__c").default == "Queued"
    for name in ("Send_Key__c", "Provider_Message_Id__c"):
        f = msg.field(name)
        assert f.external_id and f.unique and f.id_lookup
    assert schema.object("SMS_Consent__c").field("Phone__c").external_id
    assert schema.object("SMS_Link_Hit__c").field("Event_Id__c").external_id


def test_unreadable_or_unsupported_metadata_names_the_file(tmp_path):
    write_object(tmp_path, "Bad__c", {"Geo__c": "<type>Location</type>"})
    with pytest.raises(SchemaError, match=r"Geo__c\.field-meta\.xml: field type 'Location' is not supported"):
        load_schema(tmp_path)
    broken = tmp_path / "force-app" / "main" / "default" / "objects" / "Bad__c" / "fields" / "Geo__c.field-meta.xml"
    broken.write_text("<not xml")
    with pytest.raises(SchemaError, match="cannot read metadata XML"):
        load_schema(tmp_path)
    with pytest.raises(SchemaError, match="metadata directory not found"):
        load_schema(tmp_path / "missing")


def test_ids_carry_the_prefix_and_the_case_checksum():
    rid = salesforce_id("a02", 12345)
    assert len(rid) == 18 and rid.startswith("a025g0")
    assert to_18(rid[:15]) == rid and to_18(rid) == rid
    # The checksum encodes upper-case positions: a well-known real pair.
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to_18("not an id") is None
