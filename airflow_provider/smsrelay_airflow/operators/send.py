"""``SendSmsOperator``: send a templated SMS to one number or many, exactly once per recipient.

Retry safety, in four layers (a triggerer restart replays a trigger, apache/airflow#67945,
https://github.com/apache/airflow/issues/67945, so sends happen on the worker only):

1. Every message carries an idempotency key derived from dag id, run id, task id,
   map index, recipient and body; providers with native keys dedupe on it.
2. On Airflow >= 3.3, the results (message ids) go to ``task_state_store`` right
   after the provider answers, and a retry reads them back and re-sends only what
   was not accepted.
3. A retry that finds no stored result for a recipient an earlier try may have sent
   (a try killed mid-send; before 3.3, any retry) asks the provider by key
   (``lookup_by_ref``) before sending, where the provider can tell; a provider that
   dedupes the key itself (``idempotency``) is simply sent the same key again; and
   with a send journal (the connection's extra ``journal``, or ``SMSRELAY_JOURNAL``)
   the client's journal decides.
4. Otherwise (Kudosity V1, ME-SMS without a journal) nothing can prove those messages
   were not accepted: they are reported *in doubt*, with their keys, and not sent again.

The send always happens here, on the worker; ``wait_for_delivery`` defers to a
trigger that only polls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from smsrelay_airflow._compat import AirflowException, AirflowFailException, BaseOperator
from smsrelay_airflow.outcomes import DEFAULT_SUCCESS, judge
from smsrelay_airflow.outcomes import success_statuses as check_statuses

if TYPE_CHECKING:
    from smsrelay import Client, Message, PreparedSms, Recipient, Router
    from smsrelay_airflow.hooks.sms import SmsHook

__all__ = ["STATE_KEY", "SendSmsOperator", "recipients_from"]

STATE_KEY = "smsrelay_send"


def recipients_from(to: Any) -> list[Recipient]:
    """Recipients from a number, a comma-separated string, or a list of numbers or dicts.

    A dict has ``to`` and the recipient's template variables, flat or under ``vars``.
    A bad item raises ``ValueError`` naming its position, before anything is sent.

    >>> [r.to for r in recipients_from(["+61491570156", {"to": "+61491570157", "name": "Ann"}])]
    ['+61491570156', '+61491570157']
    """
    from smsrelay import Recipient

    if to is None:
        raise ValueError("to: no recipient given")
    if isinstance(to, str):
        items: list[Any] = [p.strip() for p in to.split(",") if p.strip()]
    elif isinstance(to, Mapping):
        items = [to]
    elif isinstance(to, Sequence):
        items = list(to)
    else:
        raise ValueError(f"to: expected a number or a list of recipients, got {type(to).__name__}")
    out: list[Recipient] = []
    for i, item in enumerate(items):
        if isinstance(item, str | int):
            out.append(Recipient(str(item)))
        elif isinstance(item, Mapping):
            number = item.get("to")
            if not number:
                raise ValueError(f"to[{i}]: a recipient dict needs a 'to' number, got keys {sorted(item)}")
            nested = item.get("vars") or {}
            if not isinstance(nested, Mapping):
                raise ValueError(f"to[{i}].vars: expected a mapping, got {type(nested).__name__}")
            flat = {k: v for k, v in item.items() if k not in ("to", "vars")}
            out.append(Recipient(str(number), vars={**flat, **nested}))
        else:
            raise ValueError(f"to[{i}]: expected a number or a dict with 'to', got {type(item).__name__}")
    return out


def _packed(rows: list[dict[str, Any] | None]) -> str:
    """The rows of a send whose every outcome is known, for the task state: one JSON string.

    Airflow checks a list value item by item in the task, the supervisor and the api-server
    (10,000 rows: 0.2 to 0.8 s of a shard's slot); a string it passes whole. Rows left in
    doubt are stored as a list, for a person to read their keys.
    """
    return json.dumps(rows, separators=(",", ":"))


def _unpacked(value: Any) -> list[dict[str, Any] | None] | None:
    """Stored rows, packed (:func:`_packed`) or a list."""
    rows: list[dict[str, Any] | None] | None = json.loads(value) if isinstance(value, str) else value
    return rows


def _ambiguous(row: Mapping[str, Any]) -> bool:
    """A send the provider may or may not have accepted (the core's ``AmbiguousSend``)."""
    return not row.get("message_id") and row.get("status") == "unknown"


def _doubt_row(p: Any) -> dict[str, Any]:
    """A prepared message an earlier try may have sent, that nothing can settle."""
    return {
        "to": p.to,
        "message_id": None,
        "status": "unknown",
        "parts": p.parts,
        "error": "in doubt: an earlier try may have sent it; not sent again",
        "key": p.key,
    }


class _InDoubt(Exception):
    """Messages an earlier try may have sent, not sent again; ``rows`` go to the task state."""

    def __init__(self, message: str, rows: list[dict[str, Any] | None]) -> None:
        super().__init__(message)
        self.rows = rows


def _row(r: Any) -> dict[str, Any]:
    # The key goes into the task state with the rest, so a message left in doubt can be
    # settled later (smsrelay reconcile KEY) and a retry looks it up by that key.
    return {
        "to": r.to,
        "message_id": r.message_id,
        "status": r.status.value,
        "parts": r.parts,
        "error": r.error,
        "key": r.key,
    }


class SendSmsOperator(BaseOperator):
    """Send a message to ``to``; return message ids, statuses and parts (JSON-safe, to XCom).

    Give either ``message``, which Airflow renders with the task context
    (``{{ ds }}``, ``{{ params.x }}``), or ``message_template``, which Airflow leaves
    alone and smsrelay renders per recipient with ``vars`` and the recipient's own
    variables (``Hi {{ name }}``). ``vars`` is templated by Airflow, so
    ``vars={"day": "{{ ds }}"}`` brings the context into a per-recipient message.

    ``return_results=False`` leaves the per-recipient ``results`` rows out of the return
    value: it keeps ``message_ids`` and the counts, which is all ``SmsDeliverySensor`` and a
    summary need, at a fraction of the XCom (a row is ~150 bytes, 1.5 MB for a shard of
    10,000). The rows stay in the task state, for retries. On a routed connection each
    accepted message keeps a row of its id and account, so a sensor asks the right account.

    >>> SendSmsOperator(task_id="notify", to=["+61491570156"], message="Deploy {{ ds }} done")  # doctest: +SKIP
    >>> SendSmsOperator.partial(task_id="campaign", message_template="Hi {{ name }}").expand(
    ...     to=[[{"to": "+61491570156", "name": "Ann"}], [{"to": "+61491570157", "name": "Bo"}]])  # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("to", "message", "sender", "vars", "sms_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"to": "json", "vars": "json"}
    ui_color = "#b8e0d2"

    def __init__(
        self,
        *,
        to: Any,
        message: str | None = None,
        message_template: str | None = None,
        sender: str | None = None,
        vars: Mapping[str, Any] | None = None,
        sms_conn_id: str = "smsrelay_default",
        wait_for_delivery: bool = False,
        success_statuses: Sequence[str] = DEFAULT_SUCCESS,
        poll_interval: float = 30.0,
        delivery_timeout: timedelta | float = timedelta(hours=24),
        fail_on_rejected: bool = True,
        hook_params: Mapping[str, Any] | None = None,
        return_results: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (message is None) == (message_template is None):
            raise ValueError(f"{self.task_id}: give exactly one of message or message_template")
        self.to = to
        self.message = message
        self.message_template = message_template
        self.sender = sender
        self.vars = vars
        self.sms_conn_id = sms_conn_id
        self.wait_for_delivery = wait_for_delivery
        self.success_statuses = success_statuses  # validated in execute: the core's import is deferred
        self.poll_interval = float(poll_interval)
        self.delivery_timeout = (
            delivery_timeout if isinstance(delivery_timeout, timedelta) else timedelta(seconds=delivery_timeout)
        )
        self.fail_on_rejected = fail_on_rejected
        self.hook_params = dict(hook_params or {})
        self.return_results = return_results

    @cached_property
    def hook(self) -> SmsHook:
        from smsrelay_airflow.hooks.sms import SmsHook

        return SmsHook(self.sms_conn_id, **self.hook_params)

    # -- the send ------------------------------------------------------------------
    def idempotency_context(self, context: Mapping[str, Any]) -> str:
        """``dag/run/task/map_index``: the same on every try of this task instance."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return f"airflow/{ti.dag_id}/{ti.run_id}/{ti.task_id}/{-1 if map_index is None else map_index}"

    def execute(self, context: Any) -> dict[str, Any]:
        from smsrelay import AmbiguousSend, AuthError, ConfigError, InsufficientCredit

        try:
            self.success_statuses = check_statuses(self.success_statuses)
            recipients = recipients_from(self.to)
        except ValueError as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        body = self.message if self.message is not None else self.message_template
        assert body is not None
        if self.vars is not None and not isinstance(self.vars, Mapping):
            raise AirflowFailException(f"{self.task_id}: vars must be a mapping, got {type(self.vars).__name__}")
        key = self.idempotency_context(context)
        store = context.get("task_state_store")  # Airflow >= 3.3
        state = (store.get(STATE_KEY) if store is not None else None) or {}
        try_number = int(getattr(context["ti"], "try_number", 1) or 1)
        previous = _unpacked(state.get("results"))
        if previous is not None and len(previous) != len(recipients):
            previous = None  # the recipients changed between tries: trust only the provider's lookup
        if not recipients:
            self.log.info("No recipients: nothing to send.")
            empty: dict[str, Any] = {"provider": None, "key": key, "sent_at": None, "results": [], "batch_id": None}
            return self._returned(self._output(empty))
        # An earlier try may have sent some of these: with a store, only one that reached the
        # send (it writes the state first); without one (Airflow < 3.3), any earlier try.
        resume = bool(state) if store is not None else try_number > 1
        try:
            if store is not None and not state:
                state = {"key": key, "sent_at": datetime.now(UTC).isoformat()}
                store.set(STATE_KEY, state)
            output = self._send(
                recipients,
                body,
                key,
                previous,
                resume=resume,
                sent_at=state.get("sent_at"),
            )
        except _InDoubt as exc:
            if store is not None:  # their keys, for a later try (and for you) to settle them by
                store.set(STATE_KEY, {"key": key, "sent_at": state.get("sent_at"), "results": exc.rows})
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        except AmbiguousSend as exc:
            rows = getattr(exc, "rows", None)
            if store is not None and rows is not None:
                store.set(STATE_KEY, {"key": key, "sent_at": state.get("sent_at"), "results": rows})
            raise AirflowException(f"{self.task_id}: {exc}") from None
        except (AuthError, ConfigError, InsufficientCredit) as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        if store is not None:
            # Before anything else can fail: a retry must find these ids.
            rows = output["results"]
            doubt = any(r and _ambiguous(r) for r in rows)  # on_doubt="report" returns such rows
            stored = {k: output[k] for k in ("key", "provider", "batch_id", "sent_at")}
            store.set(STATE_KEY, {**stored, "results": rows if doubt else _packed(rows)})
        output = self._output(output)
        self._log_summary(output)
        if output["rejected"] and self.fail_on_rejected:
            context["ti"].xcom_push(key="return_value", value=self._returned(output))
            raise AirflowException(self._rejections(output))
        if self.wait_for_delivery and output["message_ids"]:
            self.defer(
                trigger=self._trigger(output),
                method_name="execute_complete",
                kwargs={"output": self._returned(output)},
                timeout=self.delivery_timeout,
            )
        return self._returned(output)

    def _send(
        self,
        recipients: list[Recipient],
        body: str,
        key: str,
        previous: list[dict[str, Any] | None] | None,
        *,
        resume: bool,
        sent_at: str | None = None,
    ) -> dict[str, Any]:
        from smsrelay import AmbiguousSend, Message

        message = Message(body=body, sender=self.sender or None, vars=dict(self.vars or {}), ref=key)
        rows: list[dict[str, Any] | None] = list(previous) if previous is not None else [None] * len(recipients)
        if self.hook.router is not None:
            return self._send_routed(self.hook.router, recipients, message, rows, sent_at, resume=resume)
        client = self.hook.client
        done = sum(1 for r in rows if r and r.get("message_id"))
        if done:
            self.log.info("Found %d message(s) sent by an earlier try; not sending them again.", done)
        # Not known to be sent: a retry with nothing stored, or an earlier try whose send was ambiguous.
        unsure = [i for i, r in enumerate(rows) if (r is None and resume) or (r and _ambiguous(r))]
        if unsure and client.capabilities.lookup_by_ref:
            found = self._lookup([recipients[i] for i in unsure], message)
            for i, row in zip(unsure, found, strict=True):
                before = rows[i]
                rows[i] = row if row is not None else (None if before is None else {**before, "status": "lost"})
        elif unsure and not client.capabilities.idempotency and client.journal is None:
            # Nothing can prove these were not accepted: in doubt, never sent again.
            blind = [i for i in unsure if rows[i] is None]
            for i, p in zip(blind, self._prepared(client, [recipients[i] for i in blind], message), strict=True):
                rows[i] = _doubt_row(p) if p is not None else None  # an invalid number was never sent
        still = [r for r in (rows[i] for i in unsure) if r is not None and _ambiguous(r)]
        if still:
            raise _InDoubt(self._in_doubt(still, client.provider.name, journal=client.journal is not None), rows)
        todo = [i for i, r in enumerate(rows) if not (r and r.get("message_id"))]
        batch_id = None
        sent_at = sent_at or datetime.now(UTC).isoformat()
        if todo:
            try:
                result = client.send_many(message, [recipients[i] for i in todo], on_invalid="skip")
            except AmbiguousSend as exc:
                partial = exc.result
                for i, r in zip(todo, partial.results if partial else (), strict=False):
                    rows[i] = _row(r)
                exc.rows = rows  # type: ignore[attr-defined]  # for the task state, in input order
                raise
            batch_id = result.batch_id
            for i, r in zip(todo, result.results, strict=True):
                rows[i] = _row(r)
        return {
            "provider": client.provider.name,
            "batch_id": batch_id,
            "key": key,
            "sent_at": sent_at,
            "results": rows,
        }

    def _send_routed(
        self,
        router: Router,
        recipients: list[Recipient],
        message: Message,
        rows: list[dict[str, Any] | None],
        sent_at: str | None,
        *,
        resume: bool,
    ) -> dict[str, Any]:
        """Through the connection's routes (extra ``routing``); each row names its ``account``.

        A retry sends what has no id yet, under the same keys. With a send journal the router
        pins each key to the account that holds it; without one, a row an earlier try may have
        sent is sent again only when its route has one account, which can be asked by key or
        dedupes it; otherwise it is in doubt. What an earlier try left in doubt is never
        offered to any account again.
        """
        from smsrelay import AmbiguousRoute

        journal = all(c.journal is not None for c in router.clients.values())
        if resume and not journal:
            for i, r in enumerate(rows):
                if r is None:
                    rows[i] = self._route_doubt(router, recipients[i], message)
        still = [r for r in rows if r is not None and _ambiguous(r)]
        if still:
            raise _InDoubt(self._in_doubt(still, None, journal=journal), rows)
        todo = [i for i, r in enumerate(rows) if not (r and r.get("message_id"))]
        if rows and len(todo) < len(rows):
            self.log.info("Found %d message(s) sent by an earlier try; not sending them again.", len(rows) - len(todo))
        try:
            routed = router.send([recipients[i] for i in todo], message, on_invalid="skip")
        except AmbiguousRoute as exc:
            for i, item in zip(todo, exc.routed.results, strict=True):
                rows[i] = {**_row(item.result), "account": item.account}
            exc.rows = rows  # type: ignore[attr-defined]  # for the task state, in input order
            raise
        for i, item in zip(todo, routed.results, strict=True):
            rows[i] = {**_row(item.result), "account": item.account}
        return {
            "provider": "routing",
            "batch_id": None,
            "key": message.ref,
            "sent_at": sent_at or datetime.now(UTC).isoformat(),
            "results": rows,
        }

    @staticmethod
    def _prepared(client: Client, recipients: list[Recipient], message: Message) -> list[PreparedSms | None]:
        """Each recipient's message as the client would send it (with its key); None if it cannot be sent."""
        out: list[PreparedSms | None] = []
        for rcpt in recipients:
            ready, _ = client.prepare(message, [rcpt], on_invalid="skip")
            out.append(ready[0] if ready else None)
        return out

    def _route_doubt(self, router: Router, rcpt: Recipient, message: Message) -> dict[str, Any] | None:
        """The in-doubt row of a recipient an earlier routed try may have sent, or None if resending is safe.

        Safe: no route takes it (never sent), or its route has one account, which the client
        asks by key before sending or which dedupes the key. A route of several accounts may
        have sent it through any of them, and the first would not know.
        """
        from smsrelay import InvalidRequest, normalize_phone

        try:
            found = router.route_for(normalize_phone(rcpt.to, router.config.default_region))
        except InvalidRequest:
            return None
        if found is None:
            return None
        accounts = found[1].accounts
        caps = router.clients[accounts[0]].capabilities
        if len(accounts) == 1 and (caps.lookup_by_ref or caps.idempotency):
            return None
        for name in accounts:  # every account derives the same key; the first that can take it says which
            [p] = self._prepared(router.clients[name], [rcpt], message)
            if p is not None:
                return {**_doubt_row(p), "account": name if len(accounts) == 1 else None}
        return None

    def _in_doubt(self, rows: list[dict[str, Any]], provider: str | None, *, journal: bool) -> str:
        """Why these messages are not sent again, and what to do: for the task log and UI."""
        from smsrelay import mask_phone

        keys = [str(r.get("key")) for r in rows]
        self.log.error("In doubt, not sent again; their keys: %s", ", ".join(keys))
        # Numbers masked: the text lands in Airflow's task log and UI.
        shown = ", ".join(
            f"{mask_phone(r['to'])} at {r['account']}" if r.get("account") else mask_phone(r["to"]) for r in rows[:20]
        )
        more = f", and {len(rows) - 20} more" if len(rows) > 20 else ""
        who = f"{provider} cannot be asked by key" if provider else "their accounts cannot be asked by key"
        fix = (
            ""
            if journal
            else " So that a retry knows what a killed try sent, give the workers a send journal: the "
            "connection's extra 'journal' (a PostgreSQL URL every worker reaches) or SMSRELAY_JOURNAL."
        )
        return (
            f"{len(rows)} message(s) may or may not have been accepted by an earlier try ({shown}{more}), "
            f"and {who}; not sending them again. Their keys: {', '.join(keys[:20])}{more} (all in the task "
            f"state {STATE_KEY!r} and the log). Check the provider's log for them: if none arrived, clear the "
            f"task state {STATE_KEY!r} and the task to send them all again; else send the missing ones in a "
            f"new run.{fix}"
        )

    def _lookup(self, recipients: list[Recipient], message: Any) -> list[dict[str, Any] | None]:
        """Ask the provider which of these messages it already has, by idempotency key."""
        client = self.hook.client
        keys = [p.key if p is not None else None for p in self._prepared(client, recipients, message)]
        found = client.lookup([k for k in keys if k])
        if found:
            self.log.info("An earlier try already sent %d message(s); not sending them again.", len(found))
        return [_row(found[k]) if k and k in found else None for k in keys]

    @staticmethod
    def _output(raw: Mapping[str, Any]) -> dict[str, Any]:
        results = [r for r in raw["results"] if r is not None]
        ids = [r["message_id"] for r in results if r.get("message_id")]
        return {
            **raw,
            "message_ids": ids,
            "accepted": len(ids),
            "rejected": len(results) - len(ids),
            "parts": sum(int(r.get("parts") or 0) for r in results if r.get("message_id")),
        }

    def _returned(self, output: dict[str, Any]) -> dict[str, Any]:
        """The return value: ``output``, without its per-recipient rows when ``return_results`` is off."""
        if self.return_results:
            return output
        rows = output["results"]
        out = {k: v for k, v in output.items() if k != "results"}
        if any(r and "account" in r for r in rows):  # routed: a sensor must know each message's account
            out["results"] = [
                {"message_id": r["message_id"], "account": r["account"]} for r in rows if r and r.get("message_id")
            ]
        return out

    def _log_summary(self, output: Mapping[str, Any]) -> None:
        self.log.info(
            "%s: %d accepted (%d parts), %d not sent.",
            output["provider"],
            output["accepted"],
            output["parts"],
            output["rejected"],
        )

    def _rejections(self, output: Mapping[str, Any]) -> str:
        bad = [r for r in output["results"] if not r.get("message_id")]
        shown = "; ".join(f"{r['to']}: {r.get('error') or r['status']}" for r in bad[:20])
        more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
        return (
            f"{self.task_id}: {len(bad)} of {len(output['results'])} recipient(s) were not sent "
            f"({shown}{more}). The others were sent and will not be sent again on retry; "
            "set fail_on_rejected=False to let the task succeed anyway."
        )

    # -- waiting for delivery -------------------------------------------------------
    def _trigger(self, output: Mapping[str, Any]) -> Any:
        from smsrelay_airflow.polling import for_trigger, ids_by_account
        from smsrelay_airflow.triggers.sms import SmsDeliveryTrigger

        # A routed send's rows name their account: each message is followed on the account that sent it.
        return SmsDeliveryTrigger(
            self.sms_conn_id,
            for_trigger(ids_by_account(output)),
            poll_interval=self.poll_interval,
            success_statuses=list(self.success_statuses),
            hook_params=self.hook_params,
        )

    def execute_complete(
        self, context: Any, event: Mapping[str, Any] | None = None, output: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the delivery trigger fired: merge final statuses, fail on failures."""
        if not event or event.get("status") != "done":
            raise AirflowException(f"{self.task_id}: waiting for delivery failed: {(event or {}).get('message')}")
        statuses: Mapping[str, Mapping[str, Any]] = event["statuses"]
        result = dict(output or {})
        if "results" in result:  # absent, or ids and accounts only, with return_results=False
            result["results"] = [
                {**r, "status": statuses.get(r.get("message_id") or "", {}).get("status", r.get("status"))}
                for r in result["results"]
            ]
        result["delivery"] = dict(statuses)
        verdict = judge(statuses, tuple(self.success_statuses))
        if verdict.failures:
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowFailException(f"{self.task_id}: {verdict.failure_message(statuses)}")
        return result
