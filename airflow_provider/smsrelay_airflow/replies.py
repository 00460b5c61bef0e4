"""Matching inbound replies: from whom, since when, and approve versus reject patterns.

A pattern is a regular expression (matched case-insensitively at the start of the
reply), or a list of keywords, each matched as a whole word: ``["YES", "APPROVE"]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["DEFAULT_APPROVE", "DEFAULT_REJECT", "ReplyRule", "pattern_source"]

DEFAULT_APPROVE = r"(YES|Y|APPROVE|APPROVED|OK)\b"
DEFAULT_REJECT = r"(NO|N|REJECT|REJECTED|DENY|STOP)\b"

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


@dataclass(frozen=True)
class ReplyRule:
    """Which replies count: ``numbers`` in E.164 (empty: anyone), at or after ``after``."""

    numbers: frozenset[str]
    after: datetime | None
    approve: str | None
    reject: str | None
    in_reply_to: frozenset[str] = frozenset()

    def decide(self, reply: Mapping[str, Any]) -> Decision | None:
        """``approve``, ``reject`` or None (not for us, or no pattern matched).

        >>> rule = ReplyRule(frozenset({"+61491570156"}), None, DEFAULT_APPROVE, DEFAULT_REJECT)
        >>> rule.decide({"phone": "+61491570156", "text": " yes please"})
        'approve'
        """
        if self.numbers and reply.get("phone") not in self.numbers:
            return None
        if self.in_reply_to and reply.get("in_reply_to") not in self.in_reply_to:
            return None
        at = reply.get("occurred_at")
        if self.after is not None and isinstance(at, datetime) and at < self.after:
            return None
        text = str(reply.get("text") or "").strip()
        if self.reject and re.match(self.reject, text, re.IGNORECASE):
            return "reject"
        if self.approve is None or re.match(self.approve, text, re.IGNORECASE):
            return "approve"
        return None
