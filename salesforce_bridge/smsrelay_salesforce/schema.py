"""The object model of an org: objects and fields read from Salesforce DX source-format metadata.

Reads ``<dir>/**/objects/<Object>/<Object>.object-meta.xml`` and
``.../fields/<Field>.field-meta.xml`` into :class:`ObjectSchema` and
:class:`FieldSchema` (API type, length, required, External ID, unique, lookups,
picklist values), and adds the standard objects the bridge touches (``Contact``,
``Lead``, ``User``, ``Account``). The org emulator enforces writes with it, and
the bridge's mapping test checks its default mapping against it.

>>> schema = load_schema("salesforce_bridge/metadata")  # doctest: +SKIP
>>> schema.object("SMS_Message__c").field("Send_Key__c").external_id  # doctest: +SKIP
True
"""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "FieldSchema",
    "ObjectSchema",
    "OrgSchema",
    "SchemaError",
    "default_metadata_dir",
    "ignored_metadata",
    "load_schema",
    "standard_objects",
]

_NS = "{http://soap.sforce.com/2006/04/metadata}"

# Metadata API field type -> REST describe type. Source: Salesforce Metadata API
# "CustomField" (FieldType) and the REST describe "type" values.
METADATA_TO_API_TYPE: dict[str, str] = {
    "AutoNumber": "string",
    "Checkbox": "boolean",
    "Currency": "currency",
    "Date": "date",
    "DateTime": "datetime",
    "Email": "email",
    "Html": "textarea",
    "Lookup": "reference",
    "LongTextArea": "textarea",
    "MasterDetail": "reference",
    "MultiselectPicklist": "multipicklist",
    "Number": "double",
    "Percent": "percent",
    "Phone": "phone",
    "Picklist": "picklist",
    "Summary": "double",
    "Text": "string",
    "TextArea": "textarea",
    "Time": "time",
    "Url": "url",
}

# Default lengths Salesforce gives types whose metadata has no <length>.
_DEFAULT_LENGTH: dict[str, int] = {
    "Email": 80,
    "Phone": 40,
    "Url": 255,
    "TextArea": 255,
    "Picklist": 255,
    "MultiselectPicklist": 4099,
    "AutoNumber": 30,
}


class SchemaError(ValueError):
    """Metadata that cannot be read, naming the file and what is wrong."""


@dataclass(frozen=True)
class FieldSchema:
    """One field as the API sees it."""

    name: str
    type: str  # REST describe type: string, double, datetime, reference, ...
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    required: bool = False
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    default: object = None
    createable: bool = True
    updateable: bool = True
    calculated: bool = False
    auto_number: str | None = None  # display format of an AutoNumber
    summary: tuple[str, str, str, str | None] | None = None  # (operation, child object, child fk, summarized field)
    master_detail: bool = False
    formula: str | None = None  # a formula field's expression, as the metadata gives it

    @property
    def id_lookup(self) -> bool:
        """Whether upsert may key on this field (Id or an External ID)."""
        return self.name == "Id" or self.external_id


@dataclass
class ObjectSchema:
    """One sObject: its fields (case-insensitive by name) and its Id key prefix."""

    name: str
    label: str
    key_prefix: str
    custom: bool = True
    fields: dict[str, FieldSchema] = field(default_factory=dict)  # keyed by lower-case name
    name_field: str | None = "Name"

    def add(self, f: FieldSchema) -> None:
        self.fields[f.name.lower()] = f

    def field(self, name: str) -> FieldSchema:
        """The field called ``name`` (any case); ``KeyError`` if there is none."""
        return self.fields[name.lower()]

    def has(self, name: str) -> bool:
        return name.lower() in self.fields

    def relationship(self, name: str) -> FieldSchema | None:
        """The lookup field whose relationship name is ``name`` (``Contact__r`` -> ``Contact__c``)."""
        lname = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lname:
                return f
        return None

    def external_ids(self) -> Iterator[FieldSchema]:
        return (f for f in self.fields.values() if f.external_id or f.unique)


@dataclass
class OrgSchema:
    """All objects of the org, looked up case-insensitively."""

    objects: dict[str, ObjectSchema] = field(default_factory=dict)

    def add(self, obj: ObjectSchema) -> None:
        self.objects[obj.name.lower()] = obj

    def object(self, name: str) -> ObjectSchema:
        """The object called ``name`` (any case); ``KeyError`` if there is none."""
        return self.objects[name.lower()]

    def has(self, name: str) -> bool:
        return name.lower() in self.objects

    def by_prefix(self, prefix: str) -> ObjectSchema | None:
        for obj in self.objects.values():
            if obj.key_prefix == prefix:
                return obj
        return None

    def __iter__(self) -> Iterator[ObjectSchema]:
        return iter(self.objects.values())


def default_metadata_dir() -> pathlib.Path | None:
    """Where the shipped metadata is: packaged data first, then the source checkout."""
    here = pathlib.Path(__file__).resolve().parent
    for candidate in (here / "metadata", here.parent / "metadata"):
        if (candidate / "force-app").is_dir() or any(candidate.glob("**/*.object-meta.xml")):
            return candidate
    return None


def _system_fields(owner: bool = True) -> list[FieldSchema]:
    ro = {"createable": False, "updateable": False}
    fields = [
        FieldSchema("Id", "id", "Record ID", length=18, **ro),  # type: ignore[arg-type]
        FieldSchema("IsDeleted", "boolean", "Deleted", default=False, **ro),  # type: ignore[arg-type]
        FieldSchema("CreatedDate", "datetime", "Created Date", **ro),  # type: ignore[arg-type]
        FieldSchema("CreatedById", "reference", "Created By ID", length=18, reference_to=("User",),
                    relationship_name="CreatedBy", **ro),  # type: ignore[arg-type]
        FieldSchema("LastModifiedDate", "datetime", "Last Modified Date", **ro),  # type: ignore[arg-type]
        FieldSchema("LastModifiedById", "reference", "Last Modified By ID", length=18, reference_to=("User",),
                    relationship_name="LastModifiedBy", **ro),  # type: ignore[arg-type]
        FieldSchema("SystemModstamp", "datetime", "System Modstamp", **ro),  # type: ignore[arg-type]
    ]  # fmt: skip
    if owner:
        fields.append(
            FieldSchema(
                "OwnerId", "reference", "Owner ID", length=18, reference_to=("User",), relationship_name="Owner"
            )
        )
    return fields


def _text(name: str, length: int, label: str = "", **kw: object) -> FieldSchema:
    return FieldSchema(name, "string", label or name, length=length, **kw)  # type: ignore[arg-type]


def standard_objects() -> list[ObjectSchema]:
    """Contact, Lead, User and Account with the fields an SMS integration uses."""
    # Key prefixes are Salesforce's: 001 Account, 003 Contact, 00Q Lead, 005 User.
    ro = {"createable": False, "updateable": False}
    person = [
        _text("FirstName", 40),
        _text("LastName", 80, required=True),
        _text("Name", 121, "Full Name", calculated=True, **ro),
        FieldSchema("MobilePhone", "phone", "Mobile Phone", length=40),
        FieldSchema("Phone", "phone", "Phone", length=40),
        FieldSchema("Email", "email", "Email", length=80),
        FieldSchema("HasOptedOutOfEmail", "boolean", "Email Opt Out", default=False),
        FieldSchema("DoNotCall", "boolean", "Do Not Call", default=False),
    ]
    account = ObjectSchema("Account", "Account", "001", custom=False)
    for f in [*_system_fields(), _text("Name", 255, "Account Name", required=True), FieldSchema("Phone", "phone",
              "Phone", length=40), _text("BillingCountry", 80)]:  # fmt: skip
        account.add(f)
    contact = ObjectSchema("Contact", "Contact", "003", custom=False)
    for f in [*_system_fields(), *person, _text("MailingCountry", 80)]:
        contact.add(f)
    contact.add(
        FieldSchema("AccountId", "reference", "Account ID", length=18, reference_to=("Account",),
                    relationship_name="Account")
    )  # fmt: skip
    lead = ObjectSchema("Lead", "Lead", "00Q", custom=False)
    for f in [*_system_fields(), *person, _text("Company", 255, required=True), _text("Status", 40, default="Open"),
              _text("Country", 80)]:  # fmt: skip
        lead.add(f)
    user = ObjectSchema("User", "User", "005", custom=False)
    for f in [
        *_system_fields(owner=False),
        _text("Username", 80, required=True, unique=True),
        _text("FirstName", 40),
        _text("LastName", 80, required=True),
        _text("Name", 121, "Full Name", calculated=True, **ro),
        _text("Alias", 8),
        FieldSchema("Email", "email", "Email", length=128),
        FieldSchema("MobilePhone", "phone", "Mobile", length=40),
        FieldSchema("Phone", "phone", "Phone", length=40),
        FieldSchema("IsActive", "boolean", "Active", default=True),
        _text("TimeZoneSidKey", 40, default="GMT"),
        _text("Country", 80),
    ]:
        user.add(f)
    return [account, contact, lead, user]


def _child(el: ET.Element, tag: str) -> str | None:
    found = el.find(_NS + tag)
    if found is None:
        found = el.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _bool(el: ET.Element, tag: str) -> bool:
    return (_child(el, tag) or "").lower() == "true"


def _literal_default(expr: str | None, api_type: str) -> object:
    """A metadata default-value formula that is a plain literal; anything else is not evaluated."""
    if expr is None:
        return None
    e = expr.strip()
    if api_type == "boolean":
        return e.lower() == "true"
    if len(e) >= 2 and e[0] == e[-1] == '"':
        return e[1:-1]
    try:
        return float(e)
    except ValueError:
        return None  # ASSUMPTION: formula defaults (TODAY(), $User...) are not evaluated by the emulator


def _read_xml(path: pathlib.Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()  # noqa: S314 - the admin's own metadata files
    except (ET.ParseError, OSError) as exc:
        raise SchemaError(f"{path}: cannot read metadata XML ({exc})") from exc


def _field_from_xml(path: pathlib.Path, obj_name: str) -> FieldSchema:
    root = _read_xml(path)
    name = _child(root, "fullName") or path.name.removesuffix(".field-meta.xml")
    mtype = _child(root, "type")
    if mtype is None:
        raise SchemaError(f"{path}: field {name} has no <type>")
    if mtype not in METADATA_TO_API_TYPE and _child(root, "formula") is None:
        raise SchemaError(f"{path}: field type {mtype!r} is not supported; one of {sorted(METADATA_TO_API_TYPE)}")
    api_type = METADATA_TO_API_TYPE.get(mtype, "string")
    length = int(_child(root, "length") or _DEFAULT_LENGTH.get(mtype, 0))
    if api_type in {"string", "textarea"} and not length:
        length = 255
    picklist: list[str] = []
    default: object = _literal_default(_child(root, "defaultValue"), api_type)
    restricted = False
    value_set = root.find(_NS + "valueSet")
    if value_set is not None:
        restricted = _bool(value_set, "restricted")
        for v in value_set.iter(_NS + "value"):
            full = _child(v, "fullName")
            if full is None:
                continue
            picklist.append(full)
            if _bool(v, "default"):
                default = full
    summary = None
    calculated = _child(root, "formula") is not None
    if mtype == "Summary":
        fk = _child(root, "summaryForeignKey") or ""
        child_obj, _, child_fk = fk.partition(".")
        summarized = _child(root, "summarizedField")
        summary = (
            (_child(root, "summaryOperation") or "count").lower(),
            child_obj,
            child_fk,
            summarized.partition(".")[2] if summarized else None,
        )
        calculated = True
    ref = _child(root, "referenceTo")
    rel = _child(root, "relationshipName")
    is_ref = mtype in {"Lookup", "MasterDetail"}
    if is_ref and name.endswith("__c"):
        # The API relationship name of a custom lookup is the field name with __r (Contact__c -> Contact__r).
        rel = name[: -len("__c")] + "__r"
    read_only = calculated
    return FieldSchema(
        name=name,
        type=api_type,
        label=_child(root, "label") or name,
        length=18 if is_ref else length,
        precision=int(_child(root, "precision") or 0),
        scale=int(_child(root, "scale") or 0),
        # Master-detail fields are always required (Metadata API: MasterDetail).
        required=_bool(root, "required") or mtype == "MasterDetail",
        external_id=_bool(root, "externalId"),
        unique=_bool(root, "unique"),
        case_sensitive=_bool(root, "caseSensitive"),
        reference_to=(ref,) if ref else (),
        relationship_name=rel if is_ref else None,
        picklist_values=tuple(picklist),
        restricted_picklist=restricted,
        default=default,
        createable=not read_only,
        updateable=not read_only and not (mtype == "MasterDetail" and not _bool(root, "reparentableMasterDetail")),
        calculated=calculated,
        summary=summary,
        master_detail=mtype == "MasterDetail",
        formula=_child(root, "formula"),
    )


def _object_files(root: pathlib.Path) -> Iterable[pathlib.Path]:
    """Each object's ``.object-meta.xml``; a standard object that only gains fields (``Contact/fields``)
    has none, as DX source leaves it out so a deploy does not overwrite the object's settings."""
    found = {p.parent: p for p in root.glob("**/objects/*/*.object-meta.xml")}
    for fields in root.glob("**/objects/*/fields"):
        found.setdefault(fields.parent, fields.parent / f"{fields.parent.name}.object-meta.xml")
    return sorted(found.values())


# DX source folders of the user interface and access metadata: deployable, converted by `sf`, and
# meaningless to an API emulator (no screens, one integration user). Folder -> what it holds.
UI_METADATA: dict[str, str] = {
    "applications": "Lightning apps",
    "tabs": "tabs",
    "layouts": "page layouts",
    "compactLayouts": "compact layouts",
    "listViews": "list views",
    "quickActions": "quick actions",
    "flows": "flows",
    "permissionsets": "permission sets",
    "reportTypes": "report types",
    "reports": "reports",
}


def ignored_metadata(metadata_dir: str | pathlib.Path | None) -> dict[str, list[str]]:
    """The UI and access metadata under ``metadata_dir`` that an API emulator does not enforce.

    >>> ignored_metadata("salesforce_bridge/metadata")["applications"]  # doctest: +SKIP
    ['SMS_Relay']
    """
    out: dict[str, list[str]] = {}
    if metadata_dir is None:
        return out
    for path in sorted(pathlib.Path(metadata_dir).glob("**/*-meta.xml")):
        folder = path.parent.name
        if folder not in UI_METADATA and path.parent.parent.name == "reports":
            folder = "reports"  # reports live in a folder of their own under reports/
        if folder in UI_METADATA:
            name = path.name.removesuffix("-meta.xml").rsplit(".", 1)[0]
            if path.parent.parent.parent.name == "objects":  # objects/<Object>/listViews/<name>
                name = f"{path.parent.parent.name}.{name}"
            out.setdefault(folder, []).append(name)
    return out


def load_schema(metadata_dir: str | pathlib.Path | None = None, *, standard: bool = True) -> OrgSchema:
    """Read every object under ``metadata_dir`` (DX source format), plus the standard objects.

    Custom objects get key prefixes ``a00``, ``a01``, ... in name order, like an org's.

    >>> load_schema(None).object("contact").key_prefix
    '003'
    """
    schema = OrgSchema()
    if standard:
        for obj in standard_objects():
            schema.add(obj)
    if metadata_dir is None:
        return schema
    root = pathlib.Path(metadata_dir)
    if not root.is_dir():
        raise SchemaError(f"{root}: metadata directory not found")
    n = 0
    for path in _object_files(root):
        name = path.name.removesuffix(".object-meta.xml")
        if not path.exists():
            existing = schema.objects.get(name.lower())
            if existing is None or existing.custom:
                raise SchemaError(f"{path.parent}: fields without {path.name}; only a standard object may omit it")
            for fpath in sorted((path.parent / "fields").glob("*.field-meta.xml")):
                existing.add(_field_from_xml(fpath, name))
            continue
        xml = _read_xml(path)
        existing = schema.objects.get(name.lower())
        if existing is not None and not existing.custom:
            obj = existing  # custom fields on a standard object
        else:
            obj = ObjectSchema(name, _child(xml, "label") or name, f"a{n:02d}", custom=True)
            n += 1
            detail = any(
                _child(_read_xml(p), "type") == "MasterDetail" for p in sorted((path.parent / "fields").glob("*.xml"))
            )
            # A detail object has no owner (Salesforce: master-detail children inherit sharing from the master).
            for f in _system_fields(owner=not detail):
                obj.add(f)
            name_el = xml.find(_NS + "nameField")
            if name_el is not None:
                ntype = _child(name_el, "type") or "Text"
                auto = ntype == "AutoNumber"
                obj.add(
                    FieldSchema(
                        "Name",
                        "string",
                        _child(name_el, "label") or "Name",
                        length=80,
                        required=not auto,
                        createable=not auto,
                        updateable=not auto,
                        auto_number=(_child(name_el, "displayFormat") or "{0}") if auto else None,
                    )
                )
        for fpath in sorted((path.parent / "fields").glob("*.field-meta.xml")):
            obj.add(_field_from_xml(fpath, name))
        schema.add(obj)
    return schema
