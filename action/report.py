"""What the step reports: one row per recipient, the outputs, and the job summary table.

Numbers appear only partly hidden (``+614•••••156``), and a message id that embeds
the number shows it as a token (:mod:`action.ids`): the runner masks the full number
in logs, but outputs and summaries travel further. ``reveal-numbers: true`` shows
both in full in the outputs; the summary stays masked.

>>> mask_number("+61491570156")
'+614•••••156'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from action.ids import IdMask
from smsrelay import Status, redact

__all__ = ["Display", "Row", "mask_number", "outputs", "overall_status", "summary"]


def mask_number(number: str) -> str:
    """A number with its middle hidden: enough to tell recipients apart, not to dial."""
    digits = number.lstrip("+")
    plus = "+" if number.startswith("+") else ""
    if len(digits) < 7:
        return plus + "•" * max(len(digits) - 2, 1) + digits[-2:]
    return plus + digits[:3] + "•" * (len(digits) - 6) + digits[-3:]


@dataclass
class Row:
    """One recipient's line in the outputs and the summary."""

    to: str
    origin: str
    status: str
    parts: int = 0
    message_id: str | None = None
    error: str | None = None
    encoding: str | None = None
    # The idempotency key: for a message in doubt, what the provider can be asked about.
    key: str | None = None
    in_doubt: bool = False
    # With routing-file: the account that sent it (or would, in a dry run).
    account: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "dry-run" or Status(self.status).ok

    def to_dict(self, display: Display) -> dict[str, object]:
        row: dict[str, object] = {
            "to": display.number(self.to),
            "origin": self.origin,
            "status": self.status,
            "message_id": display.message_id(self),
            "parts": self.parts,
            # A provider's error text may quote the number; outputs travel beyond the log.
            "error": redact(self.error) if self.error else None,
        }
        if self.account:
            row["account"] = self.account
        return row


@dataclass(frozen=True)
class Display:
    """How numbers and message ids appear: partly hidden, unless ``reveal`` is set."""

    ids: IdMask | None = None
    reveal: bool = False

    def number(self, number: str) -> str:
        if self.reveal or not number:
            return number
        return mask_number(number)

    def message_id(self, row: Row) -> str | None:
        if self.reveal or self.ids is None or not row.message_id:
            return row.message_id
        return self.ids.mask(row.message_id, row.to)

    def masked(self) -> Display:
        """The same, never revealing: for the job summary and the log."""
        return Display(self.ids, reveal=False)


def overall_status(statuses: Sequence[str]) -> str:
    """One status for many messages: the first failure, else the least advanced.

    >>> overall_status(["delivered", "sent"]), overall_status(["delivered", "failed"])
    ('sent', 'failed')
    """
    if not statuses:
        return "none"
    if "dry-run" in statuses:
        return "dry-run"
    for s in statuses:
        if not Status(s).ok:
            return s
    order = [Status.SCHEDULED, Status.QUEUED, Status.SENT, Status.DELIVERED]
    return min((Status(s) for s in statuses), key=order.index).value


def outputs(
    rows: Sequence[Row],
    *,
    dry_run: bool,
    display: Display | None = None,
    reply: str = "",
    reply_from: str = "",
    decision: str = "",
) -> dict[str, str]:
    """Every declared output, always written (an empty string where there is none)."""
    display = display or Display()
    ids = [shown for r in rows if (shown := display.message_id(r))]
    unresolved = [r.key for r in rows if r.in_doubt and r.key]
    return {
        "message-id": ids[0] if ids else "",
        "message-ids": json.dumps(ids),
        "status": overall_status([r.status for r in rows]),
        "statuses": json.dumps([r.to_dict(display) for r in rows], ensure_ascii=False),
        "parts": str(sum(r.parts for r in rows if r.ok)),
        "reply": reply,
        "reply-from": display.number(reply_from),
        "decision": decision,
        "dry-run": "true" if dry_run else "false",
        "unresolved-keys": json.dumps(unresolved),
    }


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary(
    rows: Sequence[Row],
    *,
    provider: str,
    dry_run: bool,
    headline: str,
    limit: int = 1000,
    notes: Sequence[str] = (),
    display: Display | None = None,
) -> str:
    """The job summary: a headline and a table of recipient, status, parts and message id."""
    display = (display or Display()).masked()
    title = "SMS dry run" if dry_run else "SMS sent"
    lines = [f"### {title} via {provider}", "", headline, ""]
    lines += ["| # | Recipient | Status | Parts | Message id | Detail |", "|---:|---|---|---:|---|---|"]
    for i, r in enumerate(rows[:limit], 1):
        detail = r.error or (r.encoding or "")
        if r.account:
            detail = f"via {r.account}" + (f": {detail}" if detail else "")
        lines.append(
            f"| {i} | `{display.number(r.to)}` | {r.status} | {r.parts} | {_cell(display.message_id(r) or '')} "
            f"| {_cell(detail)} |"
        )
    if len(rows) > limit:
        lines.append(f"| … | {len(rows) - limit} more | | | | |")
    lines += [""] + [f"> {_cell(n)}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"
