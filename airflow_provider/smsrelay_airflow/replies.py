"""The reply sensor's arguments, as the core's one approval rule (``smsrelay.approval``) takes them.

Which reply decides a gate is decided in the core, for the GitHub Action and this provider
alike; this module only turns the sensor's JSON-safe arguments into a core
:class:`smsrelay.Approval`. A pattern is a regular expression (matched
case-insensitively at the start of the reply), or a list of keywords, each matched as a
whole word: ``["YES", "APPROVE"]``. The default words are the core's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from smsrelay import APPROVE_WORDS, REJECT_WORDS, Approval, Gate, Reply, ReplyWords, decide_gate

__all__ = ["DEFAULT_APPROVE", "DEFAULT_REJECT", "ReplyRule", "pattern_source"]

Decision = Literal["approve", "reject"]


def pattern_source(value: str | Iterable[str] | None, *, field: str) -> str | None:
    """A regex source from a regex or a keyword list; a bad regex names the field.

    >>> pattern_source(["yes", "ok"], field="approve")
    '(?:yes|ok)\\\\b'
    """
    if value is None or value == "":
        return None
    source = value if isinstance(value, str) else "(?:" + "|".join(re.escape(str(k).strip()) for k in value) + r")\b"
    try:
        re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{field}: {source!r} is not a valid regular expression ({exc})") from None
    return source


DEFAULT_APPROVE = pattern_source(APPROVE_WORDS, field="approve")
DEFAULT_REJECT = pattern_source(REJECT_WORDS, field="reject")


def _at_start(source: str | None) -> re.Pattern[str] | None:
    # The sensor has always matched at the start of the reply (re.match on the stripped text).
    return None if source is None else re.compile(r"^\s*(?:" + source + ")", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyRule:
    """Which replies count, JSON-safe for the trigger: the gate the core's rule decides.

    ``numbers`` in E.164 (empty: anyone); ``in_reply_to`` the question's message ids, whose
    first provider report is the gate's send time; without them, ``after`` is.
    ``code`` is the per-gate code the question offered, if any.
    """

    numbers: frozenset[str]
    after: datetime | None
    approve: str | None
    reject: str | None
    in_reply_to: frozenset[str] = frozenset()
    code: str | None = None
    # How long before this gate another question to the approver may still be open: the sensor's timeout.
    open_for: timedelta = timedelta(hours=1)

    @property
    def words(self) -> ReplyWords:
        return ReplyWords(_at_start(self.approve), _at_start(self.reject))

    def approval(self) -> Approval:
        """A fresh core :class:`~smsrelay.Approval` for this gate, to feed events to."""
        gate = Gate(self.after, self.in_reply_to, self.numbers, self.code)
        return Approval(gate, words=self.words, open_for=self.open_for)

    def decide(self, reply: Mapping[str, Any]) -> Decision | None:
        """One reply alone, through the core's rule: ``approve``, ``reject`` or None.

        >>> rule = ReplyRule(frozenset({"+61491570156"}), None, DEFAULT_APPROVE, DEFAULT_REJECT)
        >>> rule.decide({"phone": "+61491570156", "text": " yes please"})
        'approve'
        """
        at = reply.get("occurred_at")
        when = at if isinstance(at, datetime) else (self.after or datetime.now().astimezone())
        event = Reply(
            "rule",
            "",
            str(reply.get("phone") or ""),
            when,
            None,
            text=str(reply.get("text") or ""),
            in_reply_to=reply.get("in_reply_to"),
        )
        gate = Gate(self.after or when, self.in_reply_to, self.numbers, self.code)
        verdict = decide_gate(gate, [event], words=self.words, open_for=self.open_for)
        return None if verdict.decision == "undecided" else ("approve" if verdict.decision == "approved" else "reject")
