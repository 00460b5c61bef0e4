"""The org emulator's Bulk API 2.0 ingest jobs: create, upload CSV, close, poll, results,
with jobs that take emulator time (``bulk_processing_seconds``)."""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from smsrelay.emulators.base import EmuRequest, EmuResponse, json_response, route
from smsrelay_salesforce.schema import ObjectSchema
from smsrelay_salesforce.testing.store import (
    _BULK_OPERATIONS,
    _DELIMITERS,
    OrgStore,
    _Job,
)
from smsrelay_salesforce.testing.values import (
    _V,
    BULK_JOB_PREFIX,
    RecordError,
    RequestError,
    _format_datetime,
    salesforce_id,
)

log = logging.getLogger("smsrelay.salesforce.emulator")


class BulkApi(OrgStore):
    """``/services/data/vXX.X/jobs/ingest``."""

    # ------------------------------------------------------------------ Bulk API 2.0 ingest
    def _job_info(self, job: _Job) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": job.created_by,
            "createdDate": _format_datetime(job.created),
            "systemModstamp": _format_datetime(job.modified or job.created),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.api_version),
            "jobType": "V2Ingest",
            "lineEnding": job.line_ending,
            "columnDelimiter": next(k for k, v in _DELIMITERS.items() if v == job.delimiter),
            "contentUrl": f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches",
            "numberRecordsProcessed": len(job.successes) + len(job.failures),
            "numberRecordsFailed": len(job.failures),
            "retries": 0,
            "totalProcessingTime": job.processing_ms,
            "apiActiveProcessingTime": job.processing_ms,
            "apexProcessingTime": 0,
        }
        if job.external_id:
            info["externalIdFieldName"] = job.external_id
        if job.error_message:
            info["errorMessage"] = job.error_message
        return info

    def _job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    @route("POST", _V + r"/jobs/ingest/?")
    def bulk_create(self, req: EmuRequest, version: str) -> EmuResponse:
        spec = self._body(req)
        if not isinstance(spec, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
        operation = spec.get("operation")
        if operation not in _BULK_OPERATIONS:
            raise RequestError(400, "INVALIDJOB", f"InvalidJob : operation must be one of {sorted(_BULK_OPERATIONS)}")
        obj = self._obj(str(spec.get("object", "")))
        ext = spec.get("externalIdFieldName")
        if operation == "upsert":
            if not ext:
                raise RequestError(400, "INVALIDJOB", "InvalidJob : External ID was blank for upsert")
            ext = self._ext_field(obj, ext).name
        if spec.get("contentType", "CSV") != "CSV":
            raise RequestError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        delimiter = _DELIMITERS.get(spec.get("columnDelimiter", "COMMA"))
        line_ending = spec.get("lineEnding", "LF")
        if delimiter is None or line_ending not in {"LF", "CRLF"}:
            raise RequestError(400, "INVALIDJOB", "InvalidJob : unsupported columnDelimiter or lineEnding")
        job = _Job(
            id=salesforce_id(BULK_JOB_PREFIX, next(self._ids)),
            object=obj.name,
            operation=operation,
            external_id=ext,
            line_ending=line_ending,
            delimiter=delimiter,
            created_by=self._user_of(req),
            created=self.clock.now(),
            api_version=version,
        )
        self.jobs[job.id] = job
        return json_response(self._job_info(job))

    @route("GET", _V + r"/jobs/ingest/?")
    def bulk_list(self, req: EmuRequest, version: str) -> EmuResponse:
        return json_response({"done": True, "records": [self._job_info(j) for j in self.jobs.values()],
                              "nextRecordsUrl": None})  # fmt: skip

    @route("PUT", _V + r"/jobs/ingest/(?P<job_id>\w+)/batches/?")
    def bulk_upload(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        if job.state != "Open":
            raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not open for uploads (state {job.state})")
        if not (req.header("Content-Type") or "").lower().startswith("text/csv"):
            raise RequestError(400, "INVALIDCONTENT", "Content-Type must be text/csv")
        job.chunks.append(req.body)
        return EmuResponse(201, b"")

    @route("PATCH", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_state(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        body = self._body(req)
        state = body.get("state") if isinstance(body, dict) else None
        if state == "UploadComplete":
            if job.state != "Open":
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} is not open (state {job.state})")
            job.state = "UploadComplete"
            job.modified = self.clock.now()
            info = self._job_info(job)
            job.state = "InProgress"
            if self.bulk_processing_seconds <= 0:
                # "0": processed beside the close's answer, as Salesforce processes a job after
                # answering its close (Bulk API 2.0 Developer Guide, "Close or Abort a Job"), and
                # every later request waits until it is done, so the first poll sees JobComplete
                # whatever the machine's load, and call counts are deterministic. A positive value
                # gives Salesforce's asynchronous processing on the emulator's clock.
                self._process_beside(job)
            else:
                self.after(self.bulk_processing_seconds, lambda: self._process_job(job))
            return json_response(info)
        if state == "Aborted":
            if job.state in {"JobComplete", "Failed", "Aborted"}:
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job.id} has already finished (state {job.state})")
            job.state = "Aborted"
            job.modified = self.clock.now()
            return json_response(self._job_info(job))
        raise RequestError(400, "INVALIDJOBSTATE", f"state must be UploadComplete or Aborted, got {state!r}")

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_info(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        return json_response(self._job_info(self._job(job_id)))

    @route("DELETE", _V + r"/jobs/ingest/(?P<job_id>\w+)/?")
    def bulk_delete(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        if job.state not in {"UploadComplete", "JobComplete", "Aborted", "Failed"}:
            raise RequestError(400, "INVALIDJOBSTATE", "Only a finished or aborted job can be deleted")
        del self.jobs[job.id]
        return EmuResponse(204, b"")

    def _csv_response(self, header: list[str], rows: Iterable[list[str]], job: _Job) -> EmuResponse:
        buf = io.StringIO()
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n" if job.line_ending == "LF" else "\r\n")
        w.writerow(header)
        w.writerows(rows)
        return EmuResponse(200, buf.getvalue().encode("utf-8"), {"Content-Type": "text/csv"})

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/successfulResults/?")
    def bulk_successes(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        rows = ([rid, "true" if created else "false", *row] for rid, created, row in job.successes)
        return self._csv_response(["sf__Id", "sf__Created", *job.columns], rows, job)

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/failedResults/?")
    def bulk_failures(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        rows = ([rid, err, *row] for rid, err, row in job.failures)
        return self._csv_response(["sf__Id", "sf__Error", *job.columns], rows, job)

    @route("GET", _V + r"/jobs/ingest/(?P<job_id>\w+)/unprocessedrecords/?")
    def bulk_unprocessed(self, req: EmuRequest, version: str, job_id: str) -> EmuResponse:
        job = self._job(job_id)
        return self._csv_response(job.columns, job.unprocessed, job)

    def _process_beside(self, job: _Job) -> None:
        def run() -> None:
            started = time.perf_counter()
            try:
                self._process_job(job)
            except Exception:  # an emulator bug fails the job, never leaves it InProgress
                log.exception("org emulator: processing Bulk job %s failed", job.id)
                with self.lock:
                    job.state, job.error_message, job.modified = "Failed", "UNKNOWN_EXCEPTION", self.clock.now()
            finally:
                with self.lock:  # the emulator's own time, as a request's handling is counted
                    self.serve_seconds += time.perf_counter() - started

        thread = threading.Thread(target=run, name=f"sf-org-bulk-{job.id}", daemon=True)
        with self._processing_lock:
            self._processing.append(thread)
        thread.start()

    def _process_job(self, job: _Job) -> None:
        """Run an uploaded ingest job row by row (Bulk API 2.0 has no all-or-none), taking the lock per chunk."""
        with self.lock:
            if job.state == "Aborted":
                return
            started = self.clock.now()
            obj = self.schema.object(job.object)
            try:
                rows = self._job_rows(job)
            except RequestError as exc:
                job.state = "Failed"
                job.error_message = exc.message
                job.modified = self.clock.now()
                return
            job.duplicates = self._duplicate_keys(job, obj, rows)
        for start in range(0, len(rows), 1000):
            with self.lock:
                if job.state == "Aborted":
                    job.unprocessed.extend(raw for raw, _ in rows[start:])
                    return
                self._process_rows(job, obj, rows[start : start + 1000])
            time.sleep(0)  # let a waiting request take the lock between chunks: a lock is not fair
        with self.lock:
            job.processing_ms = int((self.clock.now() - started).total_seconds() * 1000)
            job.state = "JobComplete"
            job.modified = self.clock.now()

    def _duplicate_keys(self, job: _Job, obj: ObjectSchema, rows: list[tuple[list[str], dict[str, Any]]]) -> set[Any]:
        """External ID values an upsert job names more than once: each such row fails, none wins.

        Bulk API 2.0 Developer Guide, "Prepare Data to Upsert": a job upserts by one External ID
        field, and Salesforce refuses rows whose value repeats within the job (measured against an
        org, issue 15) rather than letting the last row win.
        """
        # ASSUMPTION: the rows carry the code the emulator's Collections upsert gives for the same
        # case, DUPLICATE_EXTERNAL_ID ("Duplicate external id specified", SOAP API StatusCode
        # list); neither REST guide shows the response for a repeated value within one request.
        if job.operation != "upsert" or job.external_id is None:
            return set()
        f = obj.field(job.external_id)
        counts = Counter(
            self._key(f, str(v))
            for _, data in rows
            if (v := next((x for k, x in data.items() if k.lower() == f.name.lower()), None)) not in (None, "")
        )
        return {k for k, n in counts.items() if n > 1}

    def _process_rows(self, job: _Job, obj: ObjectSchema, rows: list[tuple[list[str], dict[str, Any]]]) -> None:
        for raw_row, data in rows:
            try:
                if job.operation == "insert":
                    rid, created = self._create(obj, data, job.created_by), True
                elif job.operation == "update":
                    if not data.get("Id"):
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
                    rid, created = self._update(obj, data["Id"], data, job.created_by), False
                elif job.operation == "upsert":
                    assert job.external_id is not None
                    f = obj.field(job.external_id)
                    value = next((v for k, v in data.items() if k.lower() == f.name.lower()), None)
                    if value not in (None, "") and self._key(f, str(value)) in job.duplicates:
                        why = f"Duplicate external id specified: {value}"
                        raise RecordError("DUPLICATE_EXTERNAL_ID", why, [f.name])
                    rid, created = self._upsert(obj, f, value, data, job.created_by)
                else:
                    rid, created = self._delete(obj, data.get("Id", "")), False
                job.successes.append((rid, created, raw_row))
            except RecordError as exc:
                # ASSUMPTION: sf__Error is "CODE:message:fields --", the shape Bulk API result files show.
                err = f"{exc.code}:{exc.message}:{','.join(exc.fields)} --"
                rid_raw = data.get("Id") if isinstance(data.get("Id"), str) else ""
                job.failures.append((rid_raw or "", err, raw_row))
            except RequestError as exc:
                job.failures.append(("", f"{exc.code}:{exc.message}: --", raw_row))

    def _job_rows(self, job: _Job) -> list[tuple[list[str], dict[str, Any]]]:
        obj = self.schema.object(job.object)
        text = b"".join(job.chunks).decode("utf-8-sig")
        if not text.strip():
            raise RequestError(400, "INVALIDBATCH", "InvalidBatch : no data was uploaded")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=job.delimiter)
        header = next(reader)
        job.columns = header
        names: list[tuple[str, str | None]] = []  # (field or relationship, ext field for relationship columns)
        for col in header:
            base, _, sub = col.partition(".")
            if sub:
                rel = obj.relationship(base)
                if rel is None:
                    raise RequestError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {col}")
                names.append((rel.relationship_name or base, sub))
            elif obj.has(col):
                names.append((obj.field(col).name, None))
            else:
                raise RequestError(400, "INVALIDBATCH", f"InvalidBatch : Field name not found : {col}")
        if job.operation in {"delete", "hardDelete"} and [n for n, _ in names] != ["Id"]:
            raise RequestError(400, "INVALIDBATCH", "InvalidBatch : The 'delete' batch must contain only ids")
        out = []
        for row in reader:
            if not row:
                continue
            data: dict[str, Any] = {}
            for (name, ext_field), value in zip(names, row, strict=False):
                if value == "":
                    continue  # Bulk API 2.0: an empty value leaves the field unchanged
                parsed: Any = None if value == "#N/A" else value  # "#N/A" sets the field to null
                if ext_field is not None:
                    data[name] = {ext_field: parsed}
                else:
                    data[name] = parsed
            out.append((row, data))
        return out
