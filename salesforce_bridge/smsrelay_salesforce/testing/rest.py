"""The org emulator's REST API: discovery and limits, describe, SOQL query, sObject rows and
sObject Collections, as unmodified simple-salesforce 1.12 calls them."""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from smsrelay.emulators.base import EmuRequest, EmuResponse, json_response, route
from smsrelay_salesforce.schema import FieldSchema, ObjectSchema
from smsrelay_salesforce.testing import soql
from smsrelay_salesforce.testing.store import (
    _SYSTEM_AUDIT,
    OrgStore,
    _Cursor,
)
from smsrelay_salesforce.testing.values import (
    _V,
    COLLECTION_MAX,
    LONG_TEXT_PAGE,
    QUERY_LOCATOR_PREFIX,
    QUERY_PAGE,
    RecordError,
    RequestError,
    _coerce,
    _is_long_text,
    to_18,
)

log = logging.getLogger("smsrelay.salesforce.emulator")


class RestApi(OrgStore):
    """``/services/data/vXX.X/``: everything but Bulk API 2.0."""

    # ------------------------------------------------------------------ discovery and limits
    @route("GET", r"/services/data/?")
    def versions(self, req: EmuRequest) -> EmuResponse:
        return json_response(
            [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in ("58.0", "59.0", "60.0", "62.0")]
        )

    @route("GET", _V + r"/?")
    def resources(self, req: EmuRequest, version: str) -> EmuResponse:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "composite", "limits", "jobs"]
        return json_response({n: f"{base}/{n}" for n in names})

    @route("GET", _V + r"/limits/?")
    def limits(self, req: EmuRequest, version: str) -> EmuResponse:
        # REST API guide, "Limits": Max and Remaining per allocation.
        remaining = max(0, self.api_limit - self.api_used)
        ingest = sum(1 for _ in self.jobs.values())
        return json_response(
            {
                "DailyApiRequests": {"Max": self.api_limit, "Remaining": remaining},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - ingest},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            }
        )

    # ------------------------------------------------------------------ describe
    def _field_describe(self, obj: ObjectSchema, f: FieldSchema) -> dict[str, Any]:
        soap = {"string": "xsd:string", "double": "xsd:double", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
                "date": "xsd:date", "id": "tns:ID", "reference": "tns:ID"}  # fmt: skip
        return {
            "name": f.name,
            "label": f.label,
            "type": f.type,
            "soapType": soap.get(f.type, "xsd:string"),
            "length": f.length if f.type not in {"double", "boolean", "datetime", "date"} else 0,
            "precision": f.precision,
            "scale": f.scale,
            "nillable": not f.required and f.type != "boolean" and f.name != "Id",
            "createable": f.createable,
            "updateable": f.updateable,
            "calculated": f.calculated,
            "custom": f.name.endswith("__c"),
            "externalId": f.external_id,
            "unique": f.unique,
            "caseSensitive": f.case_sensitive,
            "idLookup": f.id_lookup,
            "autoNumber": f.auto_number is not None,
            "defaultedOnCreate": f.default is not None or f.name in _SYSTEM_AUDIT or f.name in {"Id", "OwnerId"},
            "defaultValue": f.default if isinstance(f.default, str | bool | float) else None,
            "referenceTo": list(f.reference_to),
            "relationshipName": f.relationship_name,
            "cascadeDelete": f.master_detail,
            "restrictedPicklist": f.restricted_picklist,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": v == f.default, "validFor": None}
                for v in f.picklist_values
            ],
            "filterable": not (f.type == "textarea" and f.length > 255),
            "sortable": not (f.type == "textarea" and f.length > 255),
        }

    def _object_summary(self, obj: ObjectSchema, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {
            "name": obj.name,
            "label": obj.label,
            "labelPlural": obj.label + "s",
            "keyPrefix": obj.key_prefix,
            "custom": obj.custom,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "urls": {"sobject": base, "describe": base + "/describe", "rowTemplate": base + "/{ID}"},
        }

    @route("GET", _V + r"/sobjects/?")
    def describe_global(self, req: EmuRequest, version: str) -> EmuResponse:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_MAX,
                "sobjects": [self._object_summary(o, version) for o in self.schema],
            }
        )

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/describe/?")
    def describe(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        children = []
        for other in self.schema:
            for f in other.fields.values():
                if f.reference_to and f.reference_to[0].lower() == obj.name.lower() and f.relationship_name:
                    children.append(
                        {"childSObject": other.name, "field": f.name, "cascadeDelete": f.master_detail,
                         "relationshipName": None}
                    )  # fmt: skip
        return json_response(
            {
                **self._object_summary(obj, version),
                "fields": [self._field_describe(obj, f) for f in obj.fields.values()],
                "childRelationships": children,
            }
        )

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/?")
    def sobject_info(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        recent = [self._render(obj, r, version, ["Id", "Name"] if obj.has("Name") else ["Id"])
                  for r in list(self.tables[obj.name].values())[-5:]]  # fmt: skip
        return json_response({"objectDescribe": self._object_summary(obj, version), "recentItems": recent})

    # ------------------------------------------------------------------ query
    def _run_query(self, req: EmuRequest, version: str) -> EmuResponse:
        q = req.params.get("q")
        if not q:
            raise RequestError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            bound = soql.bind(soql.parse(q), self.schema)
        except soql.SoqlError as exc:
            raise RequestError(400, exc.code, exc.message) from None
        rows = soql.execute(bound, self.schema, self._candidates(bound), self._fetch, self.clock.now(), self._value)
        if bound.query.count:
            return json_response({"totalSize": len(rows), "done": True, "records": []})
        size = QUERY_PAGE
        options = req.header("Sforce-Query-Options") or ""
        m = re.search(r"batchSize\s*=\s*(\d+)", options)
        if m:
            # REST API guide, "Query Options Header": batchSize 200..2,000, a hint Salesforce may round.
            size = min(QUERY_PAGE, max(200, int(m.group(1))))
        long_text = [
            f
            for ref, f in bound.fields.items()
            if ref in bound.query.fields and _is_long_text(f) and f.name.endswith("__c")
        ]
        if len(long_text) >= 2:
            # REST API guide, "Query Options Header": "If the SOQL statement selects two or more custom
            # fields of type long text, the batch size can't be more than 200 records."
            size = min(size, LONG_TEXT_PAGE)
        cursor = _Cursor(bound, [r["Id"] for r in rows], size)
        return self._page(cursor, 0, version)

    def _page(self, cursor: _Cursor, start: int, version: str) -> EmuResponse:
        ids = cursor.ids[start : start + cursor.size]
        obj = cursor.bound.obj
        table = self.tables[obj.name]
        paths = [ref.path for ref in cursor.bound.query.fields]
        # ASSUMPTION: a page shows the rows' values at the time it is fetched; a row deleted since is skipped.
        plan = self._plan(obj, paths)
        records = [self._render_plan(plan, table[i], version) for i in ids if i in table]
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": start + cursor.size >= len(cursor.ids),
                                "records": records}  # fmt: skip
        if not body["done"]:
            locator = next((k for k, c in self.cursors.items() if c is cursor), None)
            if locator is None:
                locator = f"{QUERY_LOCATOR_PREFIX}{secrets.token_hex(6)[:12].upper()}"
                self.cursors[locator] = cursor
                # ASSUMPTION: like an org's open-cursor limit, the oldest cursors are dropped beyond 50.
                while len(self.cursors) > 50:
                    self.cursors.popitem(last=False)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{start + cursor.size}"
        return json_response(body)

    @route("GET", _V + r"/(?:query|queryAll)/?")
    def query(self, req: EmuRequest, version: str) -> EmuResponse:
        return self._run_query(req, version)

    @route("GET", _V + r"/(?:query|queryAll)/(?P<locator>01g\w+)-(?P<start>\d+)")
    def query_more(self, req: EmuRequest, version: str, locator: str, start: str) -> EmuResponse:
        cursor = self.cursors.get(locator)
        if cursor is None:
            raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.cursors.move_to_end(locator)
        resp = self._page(cursor, int(start), version)
        if int(start) + cursor.size >= len(cursor.ids):
            self.cursors.pop(locator, None)
        return resp

    # ------------------------------------------------------------------ sObject rows
    @route("POST", _V + r"/sobjects/(?P<sobject>\w+)/?")
    def create(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        try:
            rid = self._create(obj, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        return json_response({"id": rid, "success": True, "errors": []}, 201)

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def retrieve(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        rec = self.tables[obj.name].get(to_18(record_id) or "")
        if rec is None:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(self._render(obj, rec, version, self._fields_param(obj, req)))

    def _fields_param(self, obj: ObjectSchema, req: EmuRequest) -> list[str] | None:
        raw = req.params.get("fields")
        if not raw:
            return None
        names = [n.strip() for n in raw.split(",") if n.strip()]
        for n in names:
            if not obj.has(n):
                raise RequestError(400, "INVALID_FIELD", f"No such column '{n}' on entity '{obj.name}'.")
        return names

    @route("PATCH", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def update(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        if to_18(record_id) not in self.tables[obj.name]:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        try:
            self._update(obj, record_id, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        return EmuResponse(204, b"")

    @route("DELETE", _V + r"/sobjects/(?P<sobject>\w+)/(?P<record_id>[A-Za-z0-9]{15}|[A-Za-z0-9]{18})/?")
    def delete(self, req: EmuRequest, version: str, sobject: str, record_id: str) -> EmuResponse:
        obj = self._obj(sobject)
        try:
            self._delete(obj, record_id)
        except RecordError:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist") from None
        return EmuResponse(204, b"")

    @route("GET", _V + r"/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/(?P<value>[^/]+)/?")
    def retrieve_by_external_id(self, req: EmuRequest, version: str, sobject: str, ext: str, value: str) -> EmuResponse:
        from urllib.parse import unquote

        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        ids = self._find_by(obj, f, _coerce(f, unquote(value)) if f.name != "Id" else unquote(value))
        if not ids:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(ids) > 1:
            return json_response([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], 300)
        return json_response(self._render(obj, self.tables[obj.name][ids[0]], version, self._fields_param(obj, req)))

    @route("PATCH", _V + r"/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/(?P<value>[^/]+)/?")
    def upsert(self, req: EmuRequest, version: str, sobject: str, ext: str, value: str) -> EmuResponse:
        from urllib.parse import unquote

        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        data = self._body(req)
        if not isinstance(data, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        self._check_json(obj, data)
        raw = unquote(value)
        try:
            ids = self._find_by(obj, f, _coerce(f, raw) if f.name != "Id" else raw)
            if len(ids) > 1:
                return json_response([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], 300)
            rid, created = self._upsert(obj, f, raw, data, self._user_of(req))
        except RecordError as exc:
            raise RequestError(400, exc.code, exc.message, exc.fields) from None
        # REST API guide, upsert: 201 with the new id when created, 200 with the body when updated (API 46.0+).
        return json_response({"id": rid, "success": True, "errors": [], "created": created}, 201 if created else 200)

    # ------------------------------------------------------------------ sObject Collections
    def _collection(self, req: EmuRequest) -> tuple[list[Any], bool]:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be an object with a records list")
        records = body["records"]
        if len(records) > COLLECTION_MAX:
            raise RequestError(
                400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {COLLECTION_MAX} records "
                "into this call", []
            )  # fmt: skip
        all_or_none = bool(body.get("allOrNone", False))
        return records, all_or_none

    def _record_type(self, rec: Any, default: ObjectSchema | None) -> ObjectSchema:
        if not isinstance(rec, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
        attrs = rec.get("attributes")
        name = attrs.get("type") if isinstance(attrs, dict) else None
        if name is None:
            if default is not None:
                return default
            raise RequestError(400, "INVALID_FIELD", "Each record must have attributes with a type", [])
        obj = self._obj(name)
        if default is not None and obj.name != default.name:
            raise RequestError(400, "INVALID_FIELD", f"Record type {name} differs from {default.name} in the URL", [])
        return obj

    def _run_collection(
        self,
        items: list[tuple[ObjectSchema, Any]],
        all_or_none: bool,
        op: Callable[[ObjectSchema, Any], dict[str, Any]],
    ) -> EmuResponse:
        results: list[dict[str, Any]] = []
        self._begin()
        failed = False
        try:
            for obj, rec in items:
                try:
                    results.append({**op(obj, rec), "success": True, "errors": []})  # op may add "_new"
                except RecordError as exc:
                    failed = True
                    rid = to_18(rec.get("Id", "")) if isinstance(rec, dict) and rec.get("Id") else None
                    results.append({"id": rid, "success": False, "errors": [exc.as_dict()]})
            if failed and all_or_none:
                self._rollback()
                # REST API guide, sObject Collections: with allOrNone, nothing is saved, and the records that
                # were valid report ALL_OR_NONE_OPERATION_ROLLED_BACK.
                rolled = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header",
                    "fields": [],
                }
                for r in results:
                    if r["success"]:
                        r.update({"success": False, "errors": [rolled]})
                        if r.get("_new") or r.get("created"):
                            r["id"] = None  # the record no longer exists
                        r.pop("created", None)
        finally:
            if self._undo is not None:
                self._commit()
        for r in results:
            r.pop("_new", None)
        return json_response(results)

    @route("POST", _V + r"/composite/sobjects/?")
    def collection_create(self, req: EmuRequest, version: str) -> EmuResponse:
        records, all_or_none = self._collection(req)
        items = [(self._record_type(r, None), r) for r in records]
        for obj, rec in items:
            self._check_json(obj, rec)
        user = self._user_of(req)
        return self._run_collection(
            items, all_or_none, lambda obj, rec: {"id": self._create(obj, rec, user), "_new": True}
        )

    @route("PATCH", _V + r"/composite/sobjects/?")
    def collection_update(self, req: EmuRequest, version: str) -> EmuResponse:
        records, all_or_none = self._collection(req)
        items = [(self._record_type(r, None), r) for r in records]
        for obj, rec in items:
            self._check_json(obj, rec)
        user = self._user_of(req)

        def op(obj: ObjectSchema, rec: dict[str, Any]) -> dict[str, Any]:
            if not rec.get("Id"):
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            return {"id": self._update(obj, rec["Id"], rec, user)}

        return self._run_collection(items, all_or_none, op)

    @route("PATCH", _V + r"/composite/sobjects/(?P<sobject>\w+)/(?P<ext>\w+)/?")
    def collection_upsert(self, req: EmuRequest, version: str, sobject: str, ext: str) -> EmuResponse:
        obj = self._obj(sobject)
        f = self._ext_field(obj, ext)
        records, all_or_none = self._collection(req)
        items = []
        for r in records:
            rec_obj = (
                self._record_type(r, None) if isinstance(r, dict) and "attributes" in r else self._record_type(r, obj)
            )
            if rec_obj.name != obj.name:
                raise RequestError(400, "INVALID_FIELD", f"Record type {rec_obj.name} differs from {obj.name}", [])
            self._check_json(obj, r)
            items.append((obj, r))
        # REST API guide, Collections upsert: two records with the same External ID both fail.
        keys = Counter(
            self._key(f, str(v))
            for _, r in items
            if (v := next((x for k, x in r.items() if k.lower() == f.name.lower()), None)) is not None
        )
        user = self._user_of(req)

        def op(o: ObjectSchema, rec: dict[str, Any]) -> dict[str, Any]:
            value = next((x for k, x in rec.items() if k.lower() == f.name.lower()), None)
            if value is None:
                raise RecordError("MISSING_ARGUMENT", f"{f.name} not specified", [f.name])
            if keys[self._key(f, str(value))] > 1:
                raise RecordError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [f.name])
            rid, created = self._upsert(o, f, value, rec, user)
            return {"id": rid, "created": created}

        return self._run_collection(items, all_or_none, op)

    @route("GET", _V + r"/composite/sobjects/(?P<sobject>\w+)/?")
    def collection_retrieve(self, req: EmuRequest, version: str, sobject: str) -> EmuResponse:
        obj = self._obj(sobject)
        ids = [i for i in req.params.get("ids", "").split(",") if i]
        fields = self._fields_param(obj, req)
        if not ids or fields is None:
            raise RequestError(400, "MISSING_ARGUMENT", "ids and fields are required")
        out = []
        for i in ids[:2000]:
            rec = self.tables[obj.name].get(to_18(i) or "")
            out.append(self._render(obj, rec, version, fields) if rec else None)
        return json_response(out)

    @route("DELETE", _V + r"/composite/sobjects/?")
    def collection_delete(self, req: EmuRequest, version: str) -> EmuResponse:
        ids = [i for i in req.params.get("ids", "").split(",") if i]
        if len(ids) > COLLECTION_MAX:
            raise RequestError(400, "EXCEEDED_ID_LIMIT", f"cannot delete more than {COLLECTION_MAX} records", [])
        all_or_none = req.params.get("allOrNone", "false").lower() == "true"
        items: list[tuple[ObjectSchema, Any]] = [(self.schema.object("User"), {"Id": i}) for i in ids]
        return self._run_collection(items, all_or_none, lambda _o, rec: {"id": self._delete(None, rec["Id"])})
