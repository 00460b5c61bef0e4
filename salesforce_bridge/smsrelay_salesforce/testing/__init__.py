"""A Salesforce org on loopback HTTPS, for the bridge's tests and for admins trying ``bridge.yaml`` offline.

Test support, outside the product's import path (the bridge never imports it). Built on the
core emulator kit (:mod:`smsrelay.emulators.base`), one module per API: ``auth`` (the token
endpoint), ``rest`` (REST and sObject Collections), ``bulk`` (Bulk API 2.0), ``soql`` (the
query engine), over ``store`` (records, validated writes, sessions, faults) and ``values``
(ids, field values, error shapes); ``org`` joins them. It speaks the
REST API that unmodified ``simple-salesforce`` 1.12 uses:

- ``POST /services/oauth2/token``: JWT bearer (RS256 signature checked against the
  connected app's certificate; ``iss``/``sub``/``aud``/``exp`` checked) and client
  credentials;
- ``/services/data/vXX.X/``: ``query``/``queryAll`` and ``query/<locator>`` (pages
  of 2,000), ``sobjects`` (describe, create, get, update, delete, upsert by
  External ID), ``composite/sobjects`` (create, update, upsert, retrieve, delete,
  with ``allOrNone``), Bulk API 2.0 ingest jobs and ``limits``;
- ``Sforce-Limit-Info: api-usage=N/M`` on every REST response, and a call counter
  (:attr:`OrgEmulator.api_calls`, :attr:`OrgEmulator.calls`) for tests and benchmarks.

Writes are checked against the object model loaded from DX metadata
(:mod:`smsrelay_salesforce.schema`): unknown fields, read-only fields, types,
lengths, restricted picklists, required fields and External ID uniqueness, with
Salesforce's error codes and shapes. Faults: :meth:`OrgEmulator.inject_error`
(``UNABLE_TO_LOCK_ROW``, ``REQUEST_LIMIT_EXCEEDED``, 5xx ...),
:meth:`OrgEmulator.fail_records` (per-record errors inside a Collections or Bulk
response), :meth:`OrgEmulator.expire_sessions` (401 ``INVALID_SESSION_ID``) and
:meth:`OrgEmulator.slow`.

>>> with OrgEmulator(ssl_context=ctx) as org:  # doctest: +SKIP
...     token = org.issue_token()
...     sf = Salesforce(instance_url=org.url, session_id=token, session=trusting_session)
...     sf.query("SELECT Id FROM Contact")["totalSize"]
0

Run standalone with ``python -m smsrelay_salesforce.testing`` (or
``smsrelay-salesforce emulate-org``): see :func:`main`.

Sources: simple-salesforce 1.12 (https://github.com/simple-salesforce/simple-salesforce),
the Limit Info header (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm),
trustme for loopback HTTPS (https://trustme.readthedocs.io), and the Salesforce REST API
Developer Guide pages named at each behaviour.
"""

from smsrelay_salesforce.testing.auth import JwtCredentials, TlsFiles, make_jwt_credentials, make_tls
from smsrelay_salesforce.testing.org import OrgEmulator, main, seed_demo, serve
from smsrelay_salesforce.testing.values import DEFAULT_API_VERSION, RecordError, salesforce_id, to_18

__all__ = [
    "DEFAULT_API_VERSION",
    "JwtCredentials",
    "OrgEmulator",
    "RecordError",
    "TlsFiles",
    "main",
    "make_jwt_credentials",
    "make_tls",
    "salesforce_id",
    "seed_demo",
    "serve",
    "to_18",
]
