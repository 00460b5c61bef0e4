"""SMSKit's client API (an Android-phone SMS gateway), as a local server.

Source: SMSKit's API reference, https://smskit.cloud/docs/api (send, job status, devices,
webhooks, rate limit); cited below as *seed* or "SMSKit docs" with the fact. SMSKit publishes no
OpenAPI spec, so every behaviour the seed leaves open is marked ``ASSUMPTION``.

Each job walks ``Pending → Assigned → Sent → Delivered`` on the emulator's clock and
pushes signed ``sms:*`` webhooks to every subscribed URL. Outcomes by the recipient's
last four digits, as the sandbox's, as far as SMSKit's wire can say them:

======  ==============================================================
digits  outcome
======  ==============================================================
0001    ``Failed`` (``sms:failed``)
0002    ``DeadLetter`` (retries exhausted; SMSKit has no "expired")
0003    ``Failed`` (carrier refused; SMSKit has no "rejected")
0004    ``Delivered``, then a reply ``YES`` (``sms:received``)
0005    ``Delivered``, then a reply ``NO``
0006    ``Delivered`` (SMSKit has no link tracking)
0007    ``Delivered``, then a reply ``STOP``; later sends to it fail
0008    ``Sent``, and no report ever comes
0009    ``Delivered``, then the ``sms:sent`` push is redelivered late
======  ==============================================================

Beyond the kit's control API (whose ``POST /_emulator/replies`` and ``opt-outs`` arrive as
``sms:received``): ``POST /_emulator/inbound`` (``{"from", "content"}``),
``POST /_emulator/rate_limit`` (the kit's; ``{"limit": n | null, "window": seconds}``) and
``POST /_emulator/devices/<id>`` (``{"status": "Offline", ...}``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import string
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from smsrelay.emulators.base import (
    Emulator,
    EmuRequest,
    EmuResponse,
    Push,
    RateLimit,
    json_response,
    route,
)
from smsrelay.providers.smskit import (
    SIGNATURE_HEADER,
    STOP_WORDS,
    TIMESTAMP_HEADER,
    WEBHOOK_EVENTS,
    signature,
)

__all__ = ["SmsKitEmulator", "smskit_id"]

_ALPHABET = string.ascii_uppercase + string.digits
OUTCOMES = {"0001": "Failed", "0002": "DeadLetter", "0003": "Failed", "0008": None}
ERRORS = {
    "0001": "Handset unreachable",
    "0002": "Retries exhausted",
    "0003": "Carrier refused the message",
}
REPLIES = {"0004": "YES", "0005": "NO", "0007": "STOP"}
OUR_NUMBER = "+254700000000"  # seed: the "to" of the sms:received example


def smskit_id(prefix: str) -> str:
    """An id in SMSKit's shape: ``job_`` + 20 upper-case alphanumerics (SMSKit docs, send)."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def _stamp(dt: datetime) -> str:
    # seed: timestamps are ISO 8601 UTC with second precision and "Z".
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_devices() -> list[dict[str, Any]]:
    return [
        {  # seed: the GET /api/devices example, verbatim
            "deviceId": "dvc_3K7J2H5F8M1N4Q9R6V0W",
            "name": "Pixel 6 — Nairobi",
            "status": "Online",
            "isEnabled": True,
            "batteryLevel": 87,
            "networkType": "LTE",
            "signalStrength": 4,
            "pendingJobCount": 0,
            "lastHeartbeatAt": "2026-06-23T10:00:05Z",
            "sims": [
                {"simSlot": 0, "carrierName": "Safaricom", "isEnabled": True, "pendingJobCount": 0},
                {"simSlot": 1, "carrierName": "Airtel", "isEnabled": False, "pendingJobCount": 0},
            ],
        },
        {
            "deviceId": "dvc_9Q2W4E6R8T0Y1U3I5O7P",
            "name": "Galaxy A14 — Mombasa",
            "status": "Offline",
            "isEnabled": True,
            "batteryLevel": 12,
            "networkType": "3G",
            "signalStrength": 1,
            "pendingJobCount": 0,
            "lastHeartbeatAt": "2026-06-23T08:41:00Z",
            "sims": [{"simSlot": 0, "carrierName": "Telkom", "isEnabled": True, "pendingJobCount": 0}],
        },
    ]


class SmsKitEmulator(Emulator):
    """The SMSKit client API. ``api_keys`` authenticate; ``suspended_keys`` get 401.

    Unlike the other emulators it enforces its documented limit by default, as it always
    has: ``rate_limit`` is a :class:`RateLimit`, ``True`` (documented: 100 an hour per key),
    ``None``/``False`` (none), or a number of requests per ``rate_window`` seconds. A device
    id not in ``devices`` is another account's (403). A webhook whose ``suspend_after``
    pushes in a row fail is suspended (``isActive``).
    """

    name = "smskit"
    # SMSKit docs, Errors & rate limits (https://smskit.cloud/docs/api) [SEED-ONLY]: "The client
    # API is limited per API client (currently 100 requests/hour). On 429, read Retry-After".
    # ASSUMPTION: a sliding hour per key (the seed names no algorithm); Retry-After is the whole
    # seconds until the key's oldest request leaves the window.
    documented_rate_limit: ClassVar[RateLimit] = RateLimit(
        100, 3600.0, retry_after=True, source="SMSKit docs, Errors & rate limits, https://smskit.cloud/docs/api"
    )

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = ("sk_test_key",),
        suspended_keys: tuple[str, ...] = ("sk_test_suspended",),
        rate_limit: RateLimit | bool | int | None = True,
        rate_window: float = 3600.0,
        assigned_after: float = 0.5,
        sent_after: float = 2.0,
        delivered_after: float = 5.0,
        reply_after: float = 8.0,
        late_sent_after: float = 10.0,
        suspend_after: int = 5,
        **kw: Any,
    ) -> None:
        self.api_keys = api_keys
        self.suspended_keys = suspended_keys
        self._rate_window = rate_window
        if isinstance(rate_limit, int) and not isinstance(rate_limit, bool):
            rate_limit = replace(self.documented_rate_limit, requests=rate_limit, per=rate_window)
        super().__init__(rate_limit=rate_limit, **kw)
        self.assigned_after = assigned_after
        self.sent_after = sent_after
        self.delivered_after = delivered_after
        self.reply_after = reply_after
        self.late_sent_after = late_sent_after
        self.suspend_after = suspend_after
        self._init_state()

    def _init_state(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.inbox: list[dict[str, Any]] = []
        self.opted_out: set[str] = set()
        self.devices = _default_devices()
        self._rr = itertools.count()
        self._push_hook: dict[int, str] = {}

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._init_state()

    def state(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for job in self.jobs.values():
            by_status[job["status"]] = by_status.get(job["status"], 0) + 1
        return {
            "jobs": len(self.jobs),
            "by_status": by_status,
            "sends": len(self.received("POST", r"/api/sms/send")),
            "requests": len(self.requests),
            "webhooks": [self._public_hook(h) for h in self.webhooks.values()],
            "inbox": len(self.inbox),
            "opted_out": sorted(self.opted_out),
            "rate_limit": {"limit": self.rate_limit, "window": self.rate_window},
        }

    # -- the hourly budget as a count and a window (the form tests set it in) -----------
    @property
    def rate_limit(self) -> int | None:
        """Requests allowed per key in ``rate_window`` seconds; ``None``: no limit."""
        limit = self.rate_limit_in_force
        return limit.requests if limit else None

    @rate_limit.setter
    def rate_limit(self, requests: int | None) -> None:
        self.set_rate_limit(None if requests is None else self._limit(requests=requests))

    @property
    def rate_window(self) -> float:
        limit = self.rate_limit_in_force
        return limit.per if limit else self._rate_window

    @rate_window.setter
    def rate_window(self, seconds: float) -> None:
        self._rate_window = seconds
        if self.rate_limit_in_force is not None:
            self.set_rate_limit(self._limit(per=seconds))

    def set_rate_limit(self, rate_limit: RateLimit | bool | None) -> None:
        super().set_rate_limit(rate_limit)
        limit = self.rate_limit_in_force
        if limit is not None:
            self._rate_window = limit.per

    def _limit(self, **change: Any) -> RateLimit:
        base = self.rate_limit_in_force or replace(self.documented_rate_limit, per=self.rate_window)
        return replace(base, **change)

    def rate_limit_account(self, req: EmuRequest) -> str | None:
        # seed: "limited per API client": a refused (401) key counts against no budget.
        key = req.header("x-api-key")
        return None if self._refusal(key) else key

    def _refusal(self, key: str | None) -> str | None:
        """Why SMSKit answers 401 to ``key``; None: the key is accepted."""
        if key in self.suspended_keys:
            return "This API client is suspended."  # seed: 401
        if not self.key_accepted(key, self.api_keys):
            return "Missing or invalid API key."
        return None

    # -- errors ---------------------------------------------------------------------
    # ASSUMPTION: SMSKit's reference SDK is .NET (seed: "SMSKit.ApiClient"), so errors are
    # ASP.NET Core's RFC 7807 problem details, the framework default; the seed says only
    # "the body explains what".
    @staticmethod
    def _problem(status: int, title: str, detail: str = "", errors: dict[str, list[str]] | None = None) -> EmuResponse:
        body: dict[str, Any] = {"type": f"https://httpstatuses.io/{status}", "title": title, "status": status}
        if detail:
            body["detail"] = detail
        if errors:
            body["errors"] = errors
        return json_response(body, status, {"Content-Type": "application/problem+json"})

    def _invalid(self, field: str, message: str) -> EmuResponse:
        return self._problem(400, "One or more validation errors occurred.", errors={field: [message]})

    def not_found(self, req: EmuRequest) -> EmuResponse:
        return self._problem(404, "Not Found", f"No route for {req.method} {req.path}")

    def rate_limited(self, req: EmuRequest, headers: dict[str, str]) -> EmuResponse:
        resp = self._problem(429, "Too Many Requests", "Rate limit exceeded. Honor Retry-After.")
        resp.headers.update(headers)
        return resp

    def _gate(self, req: EmuRequest) -> tuple[str | None, EmuResponse | None]:
        """Authenticate (the kit counted the request against the key's budget on arrival)."""
        key = req.header("x-api-key")
        if why := self._refusal(key):
            return None, self._problem(401, "Unauthorized", why)
        assert key is not None
        return key, None

    # -- send -----------------------------------------------------------------------
    @route("POST", r"/api/sms/send")
    def send_sms(self, req: EmuRequest) -> EmuResponse:
        key, denied = self._gate(req)
        if denied:
            return denied
        assert key is not None
        try:
            body = req.json()
        except ValueError:
            return self._invalid("body", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._invalid("body", "The request body must be a JSON object.")
        recipient = self._recipient(body.get("recipient"))
        if recipient is None:
            return self._invalid("recipient", "The recipient must be a phone number, e.g. +254712345678.")
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            return self._invalid("message", "The message must not be empty.")
        if len(message) > 1600:  # seed: up to 1,600 characters
            return self._invalid("message", "The message must be at most 1600 characters.")
        priority = body.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 10:
            return self._invalid("priority", "The priority must be an integer from 0 to 10.")
        idem = body.get("idempotencyKey")
        if idem is not None and (not isinstance(idem, str) or not idem or len(idem) > 255):
            # ASSUMPTION: a 255-character cap, as common for idempotency keys.
            return self._invalid("idempotencyKey", "The idempotency key must be 1-255 characters.")
        with self.lock:
            if idem is not None and (key, idem) in self.by_key:
                # seed: "same key never sends twice". ASSUMPTION: a replay answers 202 with
                # the original job, whatever the new body says (no mismatch error).
                job = self.jobs[self.by_key[(key, idem)]]
                return self._accepted(job)
            targets, problem = self._targets(body.get("devices"))
            if problem is not None:
                return problem
            if not self._eligible(targets):
                # seed: 422 "No eligible device/SIM to send".
                return self._problem(
                    422, "Unprocessable Entity", "No eligible device/SIM to send. Bring a phone online."
                )
            job = {
                "jobId": smskit_id("job"),
                "status": "Pending",
                "recipient": recipient,
                "deviceId": None,
                "simSlot": None,
                "attempts": 0,
                "createdAt": _stamp(self.clock.now()),
                "priority": priority,
                "_message": message,
                "_key": idem,
                "_targets": targets,
                "_events": {},
            }
            self.jobs[job["jobId"]] = job
            if idem is not None:
                self.by_key[(key, idem)] = job["jobId"]
        self._simulate(job)
        return self._accepted(job)

    def _accepted(self, job: dict[str, Any]) -> EmuResponse:
        # seed: "202 Accepted — Job queued. Read jobId + Location."
        location = f"/api/sms/{job['jobId']}/status"
        return json_response({"jobId": job["jobId"], "status": job["status"]}, 202, {"Location": location})

    @staticmethod
    def _recipient(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        raw = value.strip().replace(" ", "")
        # seed: "Numbers without + are treated as Kenyan (+254)."
        digits = raw[1:] if raw.startswith("+") else "254" + raw.lstrip("0")
        if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 15:
            return None
        return "+" + digits

    def _targets(self, value: Any) -> tuple[list[tuple[dict[str, Any], int | None]], EmuResponse | None]:
        """Resolve ``devices`` targeting to (device, sim slot) pairs, or an error response."""
        if value is None:
            return [(d, None) for d in self.devices], None
        if not isinstance(value, list):
            return [], self._invalid("devices", "devices must be an array.")
        out: list[tuple[dict[str, Any], int | None]] = []
        for item in value:
            # ASSUMPTION: the element shape is unpublished (SMSKit docs, send); accept a device id string
            # or an object {deviceId, simSlot?}.
            if isinstance(item, str):
                device_id, slot = item, None
            elif isinstance(item, dict) and isinstance(item.get("deviceId"), str):
                device_id, slot = item["deviceId"], item.get("simSlot")
                if slot is not None and (not isinstance(slot, int) or isinstance(slot, bool)):
                    return [], self._invalid("devices", "simSlot must be an integer.")
            else:
                return [], self._invalid("devices", "Each device must be a deviceId or {deviceId, simSlot}.")
            device = next((d for d in self.devices if d["deviceId"] == device_id), None)
            if device is None:
                # seed: 403 "Referenced a device/SIM from another account". ASSUMPTION: an id
                # that is in no account answers the same, so ids cannot be probed.
                return [], self._problem(403, "Forbidden", f"Device {device_id} does not belong to this account.")
            if slot is not None and all(s["simSlot"] != slot for s in device["sims"]):
                return [], self._problem(
                    403, "Forbidden", f"SIM {slot} of {device_id} does not belong to this account."
                )
            out.append((device, slot))
        return out, None

    def _eligible(self, targets: list[tuple[dict[str, Any], int | None]]) -> list[tuple[str, int]]:
        pairs = []
        for device, slot in targets:
            if device["status"] != "Online" or not device["isEnabled"]:
                continue
            for sim in device["sims"]:
                if sim["isEnabled"] and (slot is None or sim["simSlot"] == slot):
                    pairs.append((device["deviceId"], sim["simSlot"]))
        return pairs

    # -- lifecycle ------------------------------------------------------------------
    def _simulate(self, job: dict[str, Any]) -> None:
        # Every step is timed from acceptance, so one advance() runs the whole lifecycle.
        tail = job["recipient"][-4:]
        self.after(self.assigned_after, lambda: self._assign(job))
        self.after(self.sent_after, lambda: self._sent(job))
        outcome = OUTCOMES.get(tail, "Delivered")
        if outcome is not None:
            self.after(self.delivered_after, lambda: self._outcome(job, outcome, ERRORS.get(tail)))
        if tail in REPLIES:
            text = REPLIES[tail]
            self.after(self.reply_after, lambda: self._reply(job, text))
        if tail == "0009":
            self.after(self.late_sent_after, lambda: self._redeliver(job, "sms:sent"))

    def _assign(self, job: dict[str, Any]) -> None:
        with self.lock:
            if job["status"] != "Pending":
                return
            pairs = self._eligible(job["_targets"])
            if not pairs:
                # ASSUMPTION: a job whose phones all went away after acceptance dead-letters
                # (the 422 check at send time covers the case the seed documents).
                self._finish(job, "DeadLetter", "No eligible device")
                return
            device_id, slot = pairs[next(self._rr) % len(pairs)]
            job.update(status="Assigned", deviceId=device_id, simSlot=slot, attempts=1)
            job["_events"]["Assigned"] = _stamp(self.clock.now())

    def _outcome(self, job: dict[str, Any], status: str, error: str | None) -> None:
        if job["status"] == "Sent":
            self._finish(job, status, error)

    def _sent(self, job: dict[str, Any]) -> None:
        with self.lock:
            if job["status"] != "Assigned":
                return
            if job["recipient"] in self.opted_out:
                # seed: "STOP / opt-out keywords are honored automatically". ASSUMPTION: the
                # job is accepted, then fails, as the phone refuses to text an opted-out number.
                self._finish(job, "Failed", "Recipient opted out")
                return
            job["status"] = "Sent"
            job["_events"]["Sent"] = job["sentAt"] = _stamp(self.clock.now())
        self._emit_status(job, "sms:sent")

    def _finish(self, job: dict[str, Any], status: str, error: str | None) -> None:
        now = _stamp(self.clock.now())
        with self.lock:
            job["status"] = status
            job["_events"][status] = now
            if status == "Delivered":
                job["deliveredAt"] = now
            else:
                # ASSUMPTION: failedAt and error exist on failed jobs (SMSKit docs, job status, do not list them).
                job["failedAt"] = now
                job["error"] = error or "Send failed"
        self._emit_status(job, "sms:delivered" if status == "Delivered" else "sms:failed")

    def _job_public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "priority"}

    @route("GET", r"/api/sms/(?P<job_id>[^/]+)/status")
    def job_status(self, req: EmuRequest, job_id: str) -> EmuResponse:
        _, denied = self._gate(req)
        if denied:
            return denied
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return self._problem(404, "Not Found", f"Unknown job id {job_id}.")  # seed: 404
            return json_response(self._job_public(job))

    # -- devices --------------------------------------------------------------------
    @route("GET", r"/api/devices")
    def list_devices(self, req: EmuRequest) -> EmuResponse:
        _, denied = self._gate(req)
        if denied:
            return denied
        with self.lock:
            return json_response({"devices": self.devices})

    def set_device(self, device_id: str, **fields: Any) -> dict[str, Any]:
        """Change a device, e.g. ``set_device(id, status="Offline")`` to provoke a 422."""
        with self.lock:
            device = next(d for d in self.devices if d["deviceId"] == device_id)
            device.update(fields)
            return device

    # -- webhooks -------------------------------------------------------------------
    def _public_hook(self, hook: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in hook.items() if k != "secret" and not k.startswith("_")}

    @route("POST", r"/api/webhooks")
    def create_webhook(self, req: EmuRequest) -> EmuResponse:
        _, denied = self._gate(req)
        if denied:
            return denied
        try:
            body = req.json()
        except ValueError:
            return self._invalid("body", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._invalid("body", "The request body must be a JSON object.")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return self._invalid("url", "The url must be an absolute http(s) URL.")
        events = body.get("events", list(WEBHOOK_EVENTS))
        if not isinstance(events, list) or not events or any(e not in WEBHOOK_EVENTS for e in events):
            return self._invalid("events", f"events must be a non-empty subset of {', '.join(WEBHOOK_EVENTS)}.")
        secret = body.get("secret")
        # ASSUMPTION: the signing secret is given at registration (as GitHub's webhook
        # config.secret); one generated by SMSKit is returned once, on creation only.
        if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
            return self._invalid("secret", "The secret must be at least 16 characters.")
        hook: dict[str, Any] = {
            "id": smskit_id("whk"),  # ASSUMPTION: "whk_" ids in the style of job_/dvc_
            "url": url,
            "events": list(dict.fromkeys(events)),
            "isActive": True,
            "createdAt": _stamp(self.clock.now()),
            "secret": secret or "whsec_" + secrets.token_hex(16),
        }
        with self.lock:
            self.webhooks[hook["id"]] = hook
        shown = self._public_hook(hook)
        if secret is None:
            shown["secret"] = hook["secret"]
        return json_response(shown, 201, {"Location": f"/api/webhooks/{hook['id']}"})

    @route("GET", r"/api/webhooks")
    def list_webhooks(self, req: EmuRequest) -> EmuResponse:
        _, denied = self._gate(req)
        if denied:
            return denied
        with self.lock:
            # ASSUMPTION: wrapped like GET /api/devices' {"devices": [...]}.
            return json_response({"webhooks": [self._public_hook(h) for h in self.webhooks.values()]})

    @route("GET", r"/api/webhooks/(?P<hook_id>[^/]+)")
    def get_webhook(self, req: EmuRequest, hook_id: str) -> EmuResponse:
        hook, denied = self._hook(req, hook_id)
        return denied or json_response(self._public_hook(hook))

    def _hook(self, req: EmuRequest, hook_id: str) -> tuple[dict[str, Any], EmuResponse | None]:
        """The webhook ``hook_id``, or the 401/429/404 to answer instead."""
        _, denied = self._gate(req)
        if denied:
            return {}, denied
        hook = self.webhooks.get(hook_id)
        if hook is None:
            return {}, self._problem(404, "Not Found", f"Unknown webhook id {hook_id}.")
        return hook, None

    @route("POST", r"/api/webhooks/(?P<hook_id>[^/]+)/ping")
    def ping_webhook(self, req: EmuRequest, hook_id: str) -> EmuResponse:
        hook, denied = self._hook(req, hook_id)
        if denied:
            return denied
        # ASSUMPTION: the test event is "webhook:ping" (the seed names no type); receivers
        # must ignore event types they do not know.
        event = {
            "event": "webhook:ping",
            "eventId": smskit_id("evt"),
            "webhookId": hook_id,
            "sentAt": _stamp(self.clock.now()),
        }
        self._deliver_to(hook, event)
        return json_response({"eventId": event["eventId"]}, 202)

    def _emit_status(self, job: dict[str, Any], event: str) -> None:
        payload = {"event": event, "eventId": smskit_id("evt"), **self._job_public(job)}
        with self.lock:
            job["_events"][event] = payload
        self._emit(payload)

    def _redeliver(self, job: dict[str, Any], event: str) -> None:
        payload = job["_events"].get(event)
        if payload is not None:  # the same eventId again: receivers dedupe on it (seed)
            self._emit(payload)

    def _emit(self, payload: dict[str, Any]) -> None:
        with self.lock:
            hooks = [h for h in self.webhooks.values() if h["isActive"] and payload["event"] in h["events"]]
        for hook in hooks:
            self._deliver_to(hook, payload)

    def _deliver_to(self, hook: dict[str, Any], payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        stamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(hook["secret"], stamp, body),
        }
        push = self.push(hook["url"], body=body, headers=headers)
        with self.lock:
            self._push_hook[id(push)] = hook["id"]

    def _deliver(self, push: Push) -> None:
        super()._deliver(push)
        with self.lock:
            hook = self.webhooks.get(self._push_hook.pop(id(push), ""))
            if hook is None or self._stop.is_set():
                return
            hook["_failures"] = 0 if push.delivered else hook.get("_failures", 0) + 1
            if hook["_failures"] >= self.suspend_after:
                # seed: "an endpoint that keeps failing is suspended (re-enable in the
                # dashboard)". ASSUMPTION: after suspend_after pushes in a row fail.
                hook["isActive"] = False

    # -- inbound --------------------------------------------------------------------
    def _reply(self, job: dict[str, Any], text: str) -> None:
        if job["status"] == "Delivered":
            self.inbound(job["recipient"], text)

    def inbound(self, sender: str, text: str, *, to: str = OUR_NUMBER) -> dict[str, Any]:
        """Simulate an SMS from ``sender`` to our phone: a reply, polled or pushed.

        A STOP keyword also opts the number out, so later sends to it fail.
        """
        device = self.devices[0]
        payload = {  # seed: the sms:received example payload, field for field
            "event": "sms:received",
            "eventId": smskit_id("evt"),
            "from": sender if sender.startswith("+") else "+" + sender,
            "to": to,
            "content": text,
            "deviceId": device["deviceId"],
            "simSlot": 0,
            "receivedAt": _stamp(self.clock.now()),
        }
        with self.lock:
            self.inbox.append(payload)
            if text.strip().split(" ")[0].upper() in STOP_WORDS:
                self.opted_out.add(payload["from"])
        self._emit(payload)
        return payload

    @route("GET", r"/api/messages/inbound")
    def poll_inbound(self, req: EmuRequest) -> EmuResponse:
        # ASSUMPTION: the seed says only "polling with a since cursor". The path, the
        # opaque cursor (nextCursor, passed back as since) and the item shape (the
        # sms:received payload, so eventId dedupes across push and poll) are ours.
        _, denied = self._gate(req)
        if denied:
            return denied
        q = req.params
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            return self._invalid("limit", "limit must be an integer.")
        if not 1 <= limit <= 100:
            return self._invalid("limit", "limit must be from 1 to 100.")
        since = q.get("since") or "cur_0"
        if not since.startswith("cur_") or not since[4:].isdigit():
            return self._invalid("since", "since must be a cursor returned as nextCursor.")
        start = int(since[4:])
        with self.lock:
            items = self.inbox[start : start + limit]
            end = start + len(items)
            more = end < len(self.inbox)
        return json_response({"messages": items, "nextCursor": f"cur_{end}", "hasMore": more})

    # -- control API ------------------------------------------------------------------
    def control_reply(self, phone: str, text: str, to: str | None) -> dict[str, Any]:
        return self.inbound(phone, text, to=to or OUR_NUMBER)

    def control_opt_out(self, phone: str) -> dict[str, Any]:
        # SMSKit docs (webhooks): no opt-out event; a STOP reply (sms:received) opts the number out.
        return self.inbound(phone, "STOP")

    def control_messages(self) -> Iterable[dict[str, Any]]:
        # A phone gateway sends from the paired SIM: there is no sender field (seed).
        for job in self.jobs.values():
            yield {
                "id": job["jobId"],
                "to": job["recipient"],
                "from": None,
                "body": job["_message"],
                "status": job["status"],
            }

    def _control(self, req: EmuRequest) -> EmuResponse:
        op = req.path.removeprefix("/_emulator/").rstrip("/")
        if req.method == "POST" and (op == "inbound" or op.startswith("devices/")):
            try:
                spec = req.json() if req.body else {}
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                if op == "inbound":
                    return json_response(self.inbound(str(spec["from"]), str(spec["content"])), 201)
                return json_response(self.set_device(op.removeprefix("devices/"), **spec))
            except (KeyError, ValueError, TypeError, StopIteration) as exc:
                return json_response({"error": f"bad control call: {exc!r}"}, 400)
        return super()._control(req)
