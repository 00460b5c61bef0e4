"""The action's entrypoint: ``python -m action.main``, as the image runs it.

1. mask the credentials and every recipient number before anything is printed;
2. validate every input, then render and check every message, before any network call
   (a bad input: ``::error::`` naming it, exit 2, nothing sent);
3. send through the core client (retries, idempotency keys, reconciliation);
4. optionally wait for delivery reports or for an approving reply;
5. write the outputs and the job summary; exit 1 on a failed send unless
   ``fail-on-error`` is false (then a ``::warning::`` and exit 0).

Provider adapters are imported lazily, so only the chosen one is loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from action.context import template_context
from action.ids import IdMask, MaskedIdError
from action.inputs import InputError, Inputs, RecipientInput, parse_inputs, secret_values
from action.report import Display, Row, mask_number, outputs, summary
from action.runner import Runner
from action.wait import ReplyOutcome, wait_for_delivery, wait_for_reply
from smsrelay import (
    AmbiguousSend,
    Approval,
    AuthError,
    Client,
    ConfigError,
    Delivery,
    Gate,
    InvalidRequest,
    Message,
    PreparedSms,
    ProviderServerError,
    ProviderSettings,
    RateLimited,
    Recipient,
    Reply,
    ReplyWords,
    Router,
    SendResult,
    SmsRelayError,
    Status,
    TransportError,
    analyse_segments,
    gate_code,
    known_settings,
    missing_credentials,
    normalize_phone,
    redact,
    register_secret,
    settings_from_mapping,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# The core's setting -> the input that sets it, so a core error names the input.
SETTING_INPUTS = {
    "api_key": "api-key",
    "api_secret": "api-secret",
    "base_url": "api-url",
    "sender": "from",
    "default_region": "default-region",
    "retries": "retries",
    "timeout": "timeout",
    "sid": "sid",
    "region": "region",
}
DRY_RUN_SHOWN = 20


class _RunnerLogHandler(logging.Handler):
    """The core's log records as workflow commands, redacted."""

    def __init__(self, runner: Runner) -> None:
        super().__init__(logging.DEBUG)
        self.runner = runner

    def emit(self, record: logging.LogRecord) -> None:
        text = redact(record.getMessage())
        if record.levelno >= logging.WARNING:
            self.runner.warning(text)
        elif record.levelno >= logging.INFO:
            self.runner.info(text)
        else:
            self.runner.debug(text)


def _mask_everything(runner: Runner) -> None:
    """Register every credential and number with the runner and with the core's redaction."""
    region = runner.input("default-region") or None
    for value in secret_values(runner):
        runner.mask(value)
        register_secret(value)
        try:
            e164 = normalize_phone(value, region)
        except InvalidRequest:
            continue
        # Providers' wire formats drop the "+": mask both spellings.
        for spelling in (e164, e164.lstrip("+")):
            runner.mask(spelling)
            register_secret(spelling)


def _env_options(env: Mapping[str, str], provider: str, known: Collection[str]) -> dict[str, tuple[str, str]]:
    """``SMSRELAY_<SETTING>`` and ``SMSRELAY_<PROVIDER>_<SETTING>`` variables (the latter wins,
    as in the core's config), for settings the inputs do not cover: setting -> (variable, value)."""
    found: dict[str, tuple[str, str]] = {}
    for prefix in ("SMSRELAY_", f"SMSRELAY_{provider.upper()}_"):
        for var, value in env.items():
            name = var[len(prefix) :].lower()
            if var.startswith(prefix) and name in known:
                found[name] = (var, value)
    return found


def build_settings(runner: Runner, inputs: Inputs) -> ProviderSettings:
    """The core's settings from the inputs; a problem names the input that caused it."""
    try:
        known = known_settings(inputs.provider)
    except ConfigError as exc:
        raise InputError("provider", exc.detail) from None
    from_env = _env_options(runner.env, inputs.provider, known)
    data: dict[str, Any] = {setting: value for setting, (_, value) in from_env.items()}
    data.update(inputs.settings)
    env_vars = {setting: var for setting, (var, _) in from_env.items() if setting not in inputs.settings}
    for key in ("sid", "region"):
        if key in inputs.settings and key not in known:
            raise InputError(key, f"does not apply to provider {inputs.provider}")
    missing = missing_credentials(inputs.provider, data)
    if missing:
        where = SETTING_INPUTS.get(missing[0], "provider-options")
        raise InputError(where, f"is required for provider {inputs.provider}")
    try:
        return settings_from_mapping(data, inputs.provider, env=runner.env)
    except ConfigError as exc:
        raise _input_error(exc, env_vars) from None


def _input_error(exc: ConfigError, env_vars: Mapping[str, str] | None = None) -> InputError:
    """A core settings error, told as the input that carries the setting.

    The core names its field (``sender``); the user typed an input (``from``), so the error
    names that, with the core's text without its location (``ConfigError.detail``).
    """
    if not exc.field:
        return InputError("provider-options", exc.message)
    field = exc.field.split(".")[-1]
    if env_vars and field in env_vars:  # only the step's env: set it, so name that variable
        return InputError(env_vars[field], exc.detail, kind="environment variable")
    name = SETTING_INPUTS.get(field)
    if name is None:  # a setting only provider-options can carry: name it inside that input
        return InputError("provider-options", f"{field}: {exc.detail}")
    return InputError(name, exc.detail)


def default_ref(env: Mapping[str, str]) -> str:
    """The idempotency context of this step: one per repository, run, attempt, job and step.

    A retried request never sends twice; a re-run of the job is a new attempt and sends again.
    """
    parts = [env.get(k, "") for k in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB")]
    parts.append(env.get("GITHUB_ACTION", ""))
    if not any(parts):
        import uuid

        return "gha-local-" + uuid.uuid4().hex
    return "gha/" + "/".join(parts)


def _prepare(
    client: Client, message: Message, inputs: Inputs, runner: Runner
) -> tuple[list[tuple[RecipientInput, PreparedSms]], list[Row]]:
    """Render and check every message. A bad ``to`` or template is an input error;
    a bad CSV row is skipped and reported, so one row never sinks a list."""
    ready: list[tuple[RecipientInput, PreparedSms]] = []
    rejected: list[Row] = []
    keys: set[str] = set()
    for rcpt in inputs.recipients:
        recipient = Recipient(rcpt.to, vars={**rcpt.vars, "row": dict(rcpt.vars)})
        try:
            good, bad = client.prepare(message, [recipient], on_invalid="raise" if not rcpt.from_file else "skip")
        except ConfigError as exc:
            # A setting the provider would refuse (e.g. no sender): told as the input that sets it.
            raise _input_error(exc) from None
        except InvalidRequest as exc:
            field = inputs.message_input if exc.field == "message" else "to"
            raise InputError(field, f"{rcpt.origin}: {exc.message}") from None
        if bad:
            if not rcpt.from_file:
                raise InputError("to", f"{rcpt.origin}: {bad[0].error}")
            runner.error(f"{rcpt.origin}: {bad[0].error}; this row is not sent", title="Invalid recipient in to-file")
            rejected.append(Row(bad[0].to, rcpt.origin, Status.REJECTED.value, error=bad[0].error))
            continue
        sms = good[0]
        if sms.key in keys:
            runner.warning(f"{rcpt.origin}: the same message to the same number is already in the list; sent once")
            continue
        keys.add(sms.key)
        ready.append((rcpt, sms))
    if not ready:
        first = rejected[0].error if rejected else "no recipients"
        raise InputError("to-file", f"no recipient can be sent to (first problem: {first})")
    return ready, rejected


def _dry_run(runner: Runner, client: Client, ready: list[tuple[RecipientInput, PreparedSms]]) -> list[Row]:
    settings = client.settings
    request = {
        "provider": settings.provider,
        "endpoint": settings.base_url or client.provider.default_base_url or "(embedded)",
        "credentials": {k: "***" for k in ("api_key", "api_secret") if getattr(settings, k)},
        "from": settings.sender,
        "messages": [
            {"to": mask_number(s.to), "body": s.body, "encoding": s.encoding, "parts": s.parts, "key": s.key}
            for _, s in ready[:DRY_RUN_SHOWN]
        ],
    }
    runner.group(f"Dry run: {len(ready)} message(s) that would be sent (nothing is sent)")
    runner.info(redact(json.dumps(request, indent=2, ensure_ascii=False)))
    if len(ready) > DRY_RUN_SHOWN:
        runner.info(f"... and {len(ready) - DRY_RUN_SHOWN} more")
    runner.endgroup()
    return [Row(s.to, r.origin, "dry-run", s.parts, encoding=s.encoding) for r, s in ready]


def _send(
    runner: Runner, client: Client, message: Message, ready: list[tuple[RecipientInput, PreparedSms]]
) -> list[Row]:
    recipients = [Recipient(r.to, vars={**r.vars, "row": dict(r.vars)}) for r, _ in ready]
    doubt: set[str] = set()
    try:
        result: SendResult = client.send_many(message, recipients, on_invalid="skip")
    except AuthError as exc:
        raise InputError("api-key", f"the provider refused the credentials: {exc}") from None
    except AmbiguousSend as exc:
        doubt = set(exc.keys)
        settled = exc.result
        if settled is None:
            rows = [
                Row(s.to, r.origin, Status.UNKNOWN.value, s.parts, key=s.key, in_doubt=s.key in doubt) for r, s in ready
            ]
            _advise_in_doubt(runner, client, message, rows)
            return rows
        result = settled
    except SmsRelayError as exc:
        # A fatal error before anything was accepted: the provider refused (no credit, a bad
        # request), or never answered at all, which is a failure, not the provider's "rejected".
        error = str(exc)
        runner.error(error, title="Send failed")
        refused = not isinstance(exc, (TransportError, ProviderServerError, RateLimited))
        outcome = Status.REJECTED if refused else Status.FAILED
        return [Row(s.to, r.origin, outcome.value, s.parts, error=error, encoding=s.encoding) for r, s in ready]
    rows = []
    for (rcpt, sms), res in zip(ready, result.results, strict=True):
        if res.in_doubt:
            doubt.add(sms.key)
        status = Status.UNKNOWN.value if sms.key in doubt else res.status.value
        rows.append(
            Row(
                sms.to,
                rcpt.origin,
                status,
                res.parts or sms.parts,
                res.message_id,
                res.error,
                key=sms.key,
                in_doubt=sms.key in doubt,
            )
        )
    _advise_in_doubt(runner, client, message, rows)
    return rows


def _advise_in_doubt(runner: Runner, client: Client, message: Message, rows: list[Row]) -> None:
    """Say what a workflow can do about messages in doubt; their keys are in ``unresolved-keys``."""
    doubt = [r for r in rows if r.in_doubt]
    if not doubt:
        return
    name = client.provider.name
    for r in doubt:
        r.error = "in doubt: the provider may have accepted it; not sent again"
    text = (
        f"{len(doubt)} message(s) are in doubt: the request reached {name} but its answer was lost, and "
        f"asking {name} by key did not settle them, so they were not sent again. "
        "Their idempotency keys are in the unresolved-keys output. "
    )
    if client.capabilities.idempotency:
        text += (
            f"{name} refuses a key it has already accepted, so re-run this step with "
            f"message-ref: {message.ref} and the same message: only what it never got is sent."
        )
    else:
        text += (
            "Do not simply re-run the job: a re-run is a new attempt with new keys and would send them again. "
            f"Look each key up in {name}'s message log (it is the message's reference there) "
            "and send only the messages that are missing."
        )
    runner.error(text, title="Send outcome unknown")


def _log_rows(runner: Runner, rows: list[Row], display: Display) -> None:
    shown = display.masked()
    for r in rows:
        mark = "✓" if r.ok else "✗"
        detail = f"  {redact(r.error)}" if r.error else ""
        runner.info(f"{mark} {shown.number(r.to)}  {r.status}  {r.parts} part(s)  {shown.message_id(r) or ''}{detail}")


def _apply_reports(rows: list[Row], reports: Mapping[str, Delivery]) -> None:
    for r in rows:
        report = reports.get(r.message_id or "")
        if report is not None:
            r.to = r.to or report.phone
            r.parts = r.parts or report.parts or 0
            r.status = report.status.value
            if report.reason and not report.status.ok:
                r.error = report.reason


def _wait_delivery(runner: Runner, client: Client, inputs: Inputs, rows: list[Row]) -> list[str]:
    ids = [r.message_id for r in rows if r.message_id and r.ok]
    if not ids:
        return []
    runner.info(f"Waiting up to {inputs.wait_timeout:g}s for {len(ids)} delivery report(s) ...")
    reports, complete = wait_for_delivery(client, ids, timeout=inputs.wait_timeout, interval=inputs.poll_interval)
    _apply_reports(rows, reports)
    if not complete:
        pending = sum(1 for r in rows if r.message_id in ids and not Status(r.status).final)
        return [f"{pending} message(s) had no final delivery report after {inputs.wait_timeout:g}s"]
    return []


def _wait_reply(
    runner: Runner, client: Client, inputs: Inputs, rows: list[Row], allowed: set[str], code: str | None
) -> ReplyOutcome:
    """Wait for the reply that decides this gate, by the core's approval rule.

    The gate's send time is the provider's own (its first report of the gate's messages),
    never this runner's clock: a reply older than that answers something else.
    """
    ids = frozenset(r.message_id for r in rows if r.message_id and r.ok)
    approval = Approval(
        Gate(None, ids, frozenset(allowed), code),
        words=inputs.words,
        # Another gate for the same approver may have opened up to one wait before this one.
        open_for=timedelta(seconds=inputs.wait_timeout),
    )
    if ids and client.capabilities.status_poll:
        # The earliest report is the accept itself, where the provider can already be asked.
        with contextlib.suppress(SmsRelayError):
            approval.observe(client.status(sorted(ids)).values())
    runner.info(f"Waiting up to {inputs.wait_timeout:g}s for a reply from {len(allowed)} number(s) ...")

    def passed(reply: Reply, why: str) -> None:
        runner.info(f"Reply from {mask_number(reply.phone)} {why}; still waiting")

    return wait_for_reply(
        client, approval, timeout=inputs.wait_timeout, interval=inputs.poll_interval, on_passed=passed
    )


def _with_code(body: str, code: str, inputs: Inputs) -> str:
    """The gate's question with its code: where the template puts ``approval_code``, else appended."""
    if "approval_code" in body:
        return body
    if inputs.words.approve is ReplyWords().approve and inputs.words.reject is ReplyWords().reject:
        return f"{body}\nReply YES {code} or NO {code}"
    return f"{body}\nInclude {code} in your reply"


def run(runner: Runner) -> int:
    """Everything after the masks; raises ``InputError`` for a bad input."""
    inputs = parse_inputs(runner)
    if inputs.routing_file is not None:
        return _run_routed(runner, inputs, inputs.routing_file)
    settings = build_settings(runner, inputs)
    try:
        client = Client(settings=settings)
    except ConfigError as exc:
        raise _input_error(exc) from None
    try:
        return _run(runner, client, inputs)
    finally:
        client.close()


def _router(runner: Runner, path: Path) -> Router:
    """The routing file's accounts, their keys masked; an error names the file, line and key."""
    shown = runner.input("routing-file")
    try:
        router = Router.from_file(path, env=runner.env, on_doubt="report")
    except ConfigError as exc:
        where = f"{shown}:{exc.line}" if exc.line else shown
        field = f", field {exc.field!r}" if exc.field else ""
        raise InputError("routing-file", f"{where}{field}: {exc.detail}") from None
    for client in router.clients.values():
        for secret in (client.settings.api_key, client.settings.api_secret):
            if secret:
                runner.mask(secret)
                register_secret(secret)
    return router


def _run_routed(runner: Runner, inputs: Inputs, path: Path) -> int:
    """Send through the routing file's accounts: each recipient by its route, failover on a definite refusal."""
    with _router(runner, path) as router:
        context = template_context(runner.env, inputs.template_vars)
        message = Message(
            body=inputs.message,
            sender=inputs.sender,
            vars=context,
            ref=inputs.message_ref or default_ref(runner.env),
            track_links=inputs.track_links,
            priority=inputs.priority,
        )
        for rcpt in inputs.recipients:
            if rcpt.from_file:
                continue  # a bad CSV row is reported on its row, as without routing
            try:
                normalize_phone(rcpt.to, router.config.default_region)
            except InvalidRequest as exc:
                raise InputError("to", f"{rcpt.origin}: {exc.message}") from None
        recipients = [Recipient(r.to, vars={**r.vars, "row": dict(r.vars)}) for r in inputs.recipients]
        try:
            routed = router.send(recipients, message, dry_run=inputs.dry_run, on_invalid="skip")
        except InvalidRequest as exc:  # the message itself (template, length): nothing was sent
            raise InputError(inputs.message_input, exc.message) from None
        # An id that embeds the number is masked with its account's credentials, as a one-provider
        # step does, so a later step with that account's settings can read it back.
        masks = {name: IdMask([c.settings.api_key, c.settings.api_secret]) for name, c in router.clients.items()}
        rows = []
        for rcpt, item in zip(inputs.recipients, routed.results, strict=True):
            res = item.result
            shown_id = res.message_id
            if shown_id and item.account and not inputs.reveal_numbers:
                shown_id = masks[item.account].mask(shown_id, res.to)
            status = "dry-run" if inputs.dry_run and res.accepted else res.status.value
            error = "in doubt: the provider may have accepted it; not sent again" if res.in_doubt else res.error
            rows.append(
                Row(
                    res.to or rcpt.to,
                    rcpt.origin,
                    status,
                    res.parts,
                    shown_id,
                    error,
                    key=res.key,
                    in_doubt=res.in_doubt,
                    account=item.account,
                )
            )
    display = Display(reveal=inputs.reveal_numbers)
    _log_rows(runner, rows, display)
    failed = sum(1 for r in rows if not r.ok)
    problems = [f"{failed} of {len(rows)} message(s) failed"] if failed and not inputs.dry_run else []
    if routed.in_doubt:
        runner.error(
            f"{len(routed.in_doubt)} message(s) are in doubt: an account may have accepted them, so they were not "
            "sent through another. Their keys are in the unresolved-keys output; settle each with its account.",
            title="Send outcome unknown",
        )
    return _finish(
        runner,
        inputs,
        "routing file " + runner.input("routing-file"),
        rows,
        problems=problems,
        outcome=None,
        display=display,
    )


def _check_capabilities(client: Client, inputs: Inputs) -> None:
    caps, name = client.capabilities, client.provider.name
    if inputs.wait_for == "delivery" and not caps.status_poll:
        raise InputError("wait-for", f"{name} cannot be polled for delivery reports, so 'delivery' is not available")
    if inputs.wait_for == "reply" and not caps.inbound_poll:
        raise InputError("wait-for", f"{name} cannot be polled for replies, so 'reply' is not available")
    if inputs.track_links and not caps.link_tracking:
        raise InputError("track-links", f"{name} does not track links")


def _follow(inputs: Inputs, ids: IdMask) -> list[Row]:
    """Rows for the ids an earlier step sent (``message-ids``), masked ones read back."""
    rows = []
    for i, shown in enumerate(inputs.follow_ids, 1):
        try:
            message_id, digits = ids.unmask(shown)
        except MaskedIdError as exc:
            raise InputError(
                "message-ids",
                f"item {i} cannot be read back ({exc}): pass the message-ids output of a step "
                "that used the same provider credentials",
            ) from None
        # Accepted by the provider when it got its id; the reports say how far it got since.
        rows.append(
            Row("+" + digits if digits else "", f"message-ids item {i}", Status.QUEUED.value, message_id=message_id)
        )
    return rows


def _delivery_problems(runner: Runner, client: Client, inputs: Inputs, rows: list[Row], display: Display) -> list[str]:
    problems = _wait_delivery(runner, client, inputs, rows)
    undelivered = [r for r in rows if r.status != Status.DELIVERED.value and Status(r.status).final]
    if undelivered:
        problems.append(f"{len(undelivered)} of {len(rows)} message(s) were not delivered")
    _log_rows(runner, rows, display)
    return problems


def _run(runner: Runner, client: Client, inputs: Inputs) -> int:
    _check_capabilities(client, inputs)
    display = Display(IdMask([client.settings.api_key, client.settings.api_secret]), inputs.reveal_numbers)
    if inputs.follow_ids:
        assert display.ids is not None
        rows = _follow(inputs, display.ids)
        runner.info(f"smsrelay: following {len(rows)} message(s) via {client.provider.name}")
        problems = _delivery_problems(runner, client, inputs, rows, display)
        return _finish(runner, inputs, client.provider.name, rows, problems=problems, outcome=None, display=display)
    allowed: set[str] = set()
    if inputs.wait_for == "reply":
        for i, number in enumerate(inputs.reply_from, 1):
            try:
                allowed.add(normalize_phone(number, client.settings.default_region))
            except InvalidRequest as exc:
                raise InputError("reply-from", f"item {i}: {exc.message}") from None
    context = template_context(runner.env, inputs.template_vars)
    ref = inputs.message_ref or default_ref(runner.env)
    body, code = inputs.message, None
    if inputs.approval_code:
        # Derived from the step's reference, so a retried send has the same text and key.
        code = context["approval_code"] = gate_code(ref)
        body = _with_code(body, code, inputs)
    message = Message(
        body=body,
        sender=inputs.sender,
        vars=context,
        ref=ref,
        track_links=inputs.track_links,
        priority=inputs.priority,
    )
    ready, rejected = _prepare(client, message, inputs, runner)
    if inputs.wait_for == "reply" and not allowed:
        allowed = {s.to for _, s in ready}
    for dup in inputs.duplicates:
        runner.warning(f"{dup} repeats an earlier number; it is sent once")
    sample = analyse_segments(ready[0][1].body)
    runner.info(
        f"smsrelay: {len(ready)} message(s) via {client.provider.name}, "
        f"{sample.encoding}, {sample.parts} part(s) for the first"
    )
    if sample.encoding == "UCS-2":
        runner.notice("The message needs UCS-2 (emoji or non-GSM characters): 70 characters per part, not 160")

    if inputs.dry_run:
        rows = _dry_run(runner, client, ready) + rejected
        return _finish(runner, inputs, client.provider.name, rows, problems=[], outcome=None, display=display)

    rows = _send(runner, client, message, ready) + rejected
    _log_rows(runner, rows, display)
    failed = sum(1 for r in rows if not r.ok)
    problems = [f"{failed} of {len(rows)} message(s) failed"] if failed else []
    outcome: ReplyOutcome | None = None
    if inputs.wait_for == "delivery":
        problems = _delivery_problems(runner, client, inputs, rows, display)
    elif inputs.wait_for == "reply" and not problems:
        outcome = _wait_reply(runner, client, inputs, rows, allowed, code)
        if outcome.decision == "rejected" and outcome.reply is not None:
            problems.append(f"rejected by a reply from {mask_number(outcome.reply.phone)}: {outcome.reply.text!r}")
        elif outcome.decision == "timeout":
            problems.append(f"no approving or rejecting reply within {inputs.wait_timeout:g}s ({outcome.reason})")
        else:
            assert outcome.reply is not None
            runner.notice(f"Approved by a reply from {mask_number(outcome.reply.phone)}: {outcome.reply.text!r}")
        if client.capabilities.status_poll:
            # One last look, so the outputs show how far each message got.
            ids = [r.message_id for r in rows if r.message_id]
            with contextlib.suppress(SmsRelayError):
                _apply_reports(rows, client.status(ids))
    return _finish(runner, inputs, client.provider.name, rows, problems=problems, outcome=outcome, display=display)


def _finish(
    runner: Runner,
    inputs: Inputs,
    provider: str,
    rows: list[Row],
    *,
    problems: list[str],
    outcome: ReplyOutcome | None,
    display: Display,
) -> int:
    if inputs.dry_run and any(not r.ok for r in rows):
        problems = [f"{sum(1 for r in rows if not r.ok)} recipient(s) would not be sent"]
    reply = outcome.reply if outcome else None
    runner.set_outputs(
        outputs(
            rows,
            dry_run=inputs.dry_run,
            display=display,
            reply=reply.text if reply else "",
            reply_from=reply.phone if reply else "",
            decision=outcome.decision if outcome else "",
        )
    )
    counts = Counter(r.status for r in rows)
    verb = "would be sent" if inputs.dry_run else ", ".join(f"{n} {s}" for s, n in counts.items())
    headline = f"**{len(rows)}** message(s): {verb}."
    notes = list(problems)
    if outcome is not None and reply is not None:
        notes.append(f"Decision: {outcome.decision} by a reply from {mask_number(reply.phone)}: {reply.text!r}")
    runner.add_summary(
        redact(
            summary(
                rows,
                provider=provider,
                dry_run=inputs.dry_run,
                headline=headline,
                notes=notes,
                display=display,
            )
        )
    )
    if not problems:
        return EXIT_OK
    text = "; ".join(problems)
    if inputs.fail_on_error:
        runner.error(text, title="SMS failed")
        return EXIT_FAILED
    runner.warning(f"{text} (fail-on-error is false, so the step passes)", title="SMS failed")
    return EXIT_OK


def main(env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run the action as the runner would; return the exit code.

    >>> main({"INPUT_PROVIDER": "sandbox", "INPUT_TO": "+61491570156", "INPUT_MESSAGE": "Hi",
    ...       "INPUT_DRY-RUN": "true"})  # doctest: +SKIP
    0
    """
    runner = Runner(os.environ if env is None else env, out or sys.stdout)
    _mask_everything(runner)
    core_log = logging.getLogger("smsrelay")
    handler = _RunnerLogHandler(runner)
    saved = core_log.level, core_log.propagate
    core_log.addHandler(handler)
    core_log.setLevel(logging.DEBUG if runner.env.get("RUNNER_DEBUG") == "1" else logging.INFO)
    core_log.propagate = False
    try:
        return run(runner)
    except InputError as exc:
        runner.error(redact(exc.message), title=f"Invalid {exc.kind}: {exc.input}")
        runner.info(redact(f"{exc.label}: {exc.message}"))
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug or an unexpected provider answer: fail, redacted
        runner.error(redact(f"{type(exc).__name__}: {exc}"), title="smsrelay action failed")
        return EXIT_FAILED
    finally:
        core_log.removeHandler(handler)
        core_log.level, core_log.propagate = saved


if __name__ == "__main__":
    raise SystemExit(main())
