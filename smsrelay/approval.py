"""The one approval rule: does a reply approve, reject, or not (yet) decide one gate?

A *gate* is a question sent by SMS ("Deploy prod? Reply YES 4821") that waits for an
answer. The GitHub Action (``wait-for: reply``) and the Airflow ``SmsReplySensor`` both
decide through this module, so they take the same replies for the same reasons:

1. only a reply from one of the gate's approvers counts (no approvers: anyone);
2. a reply older than the provider's own time for the gate's send (its accept, or its
   first status report) never counts; both times come from the provider's clock, so
   no allowance for clock skew between the provider and the runner is needed;
3. the reply must start with an approve or a reject word; reject wins a tie;
4. a reply that carries the gate's code ("YES 4821") decides that gate; one that
   carries another code decides none;
5. a reply the provider threads to an outbound message decides that message's gate
   only;
6. a reply with neither a code nor a thread decides the gate only when no other message
   to that number may be an open gate: none reported after the gate's send, and none in
   the ``open_for`` before the gate's send that the number has not replied to since.
   Otherwise two gates could take the same "YES", so it decides none, and the reason
   says to reply with the code.

>>> from datetime import UTC, datetime
>>> from smsrelay.model import Reply
>>> sent = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
>>> gate = Gate(sent_at=sent, message_ids=frozenset({"m1"}), approvers=frozenset({"+61491570156"}))
>>> early = Reply("r1", "sandbox", "+61491570156", datetime(2026, 1, 1, 8, 59, 59, tzinfo=UTC), "r1", text="YES")
>>> decide_gate(gate, [early]).decision
'undecided'
>>> late = Reply("r2", "sandbox", "+61491570156", datetime(2026, 1, 1, 9, 1, tzinfo=UTC), "r2", text="yes")
>>> decide_gate(gate, [early, late]).decision
'approved'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from smsrelay.model import Delivery, Event, Reply
from smsrelay.phone import mask

__all__ = [
    "APPROVE_WORDS",
    "DEFAULT_OPEN_FOR",
    "REJECT_WORDS",
    "Approval",
    "Decision",
    "Gate",
    "GateVerdict",
    "Outbound",
    "ReplyWords",
    "decide_gate",
    "gate_code",
]

Decision = Literal["approved", "rejected", "undecided"]

# The one set of words both integrations use by default (case-insensitive, whole words,
# at the start of the reply). STOP also rejects: whoever sends it wants nothing to go ahead.
APPROVE_WORDS = ("YES", "Y", "APPROVE", "APPROVED", "OK", "GO")
REJECT_WORDS = ("NO", "N", "REJECT", "REJECTED", "DENY", "STOP", "ABORT")
# How long before a gate's send another message to the same number may still be an
# open gate: the Action's default wait-timeout. Integrations pass their own timeout.
DEFAULT_OPEN_FOR = timedelta(minutes=10)
CODE_DIGITS = 4


def words_pattern(words: Iterable[str], *, field: str = "words") -> re.Pattern[str]:
    r"""A pattern for a reply that starts with one of ``words``, as a whole word, in any case.

    >>> bool(words_pattern(["yes", "ship it"]).search("  Ship it, thanks"))
    True
    """
    cleaned = [w.strip() for w in words if w and w.strip()]
    if not cleaned:
        raise ValueError(f"{field}: give at least one word")
    return re.compile(r"^\W*(?:" + "|".join(re.escape(w) for w in cleaned) + r")\b", re.IGNORECASE)


def _pattern(value: str | Iterable[str] | re.Pattern[str] | None, *, field: str) -> re.Pattern[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, re.Pattern):
        return value
    if isinstance(value, str):
        try:
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{field}: {value!r} is not a valid regular expression ({exc})") from None
    return words_pattern(value, field=field)


_APPROVE, _REJECT = words_pattern(APPROVE_WORDS), words_pattern(REJECT_WORDS)


@dataclass(frozen=True)
class ReplyWords:
    """What approves and what rejects: word lists (matched at the start) or regexes (searched).

    ``approve=None`` approves any reply that does not reject. Reject wins a tie.

    >>> ReplyWords().classify("no, not yet"), ReplyWords().classify("Yes!"), ReplyWords().classify("later")
    ('rejected', 'approved', None)
    >>> ReplyWords.parse(approve=r"\\bship\\b", reject=["HOLD"]).classify("please ship")
    'approved'
    """

    approve: re.Pattern[str] | None = _APPROVE
    reject: re.Pattern[str] | None = _REJECT

    @classmethod
    def parse(
        cls,
        approve: str | Iterable[str] | re.Pattern[str] | None = APPROVE_WORDS,
        reject: str | Iterable[str] | re.Pattern[str] | None = REJECT_WORDS,
    ) -> ReplyWords:
        """From a regex (text, searched case-insensitively) or a word list for each side.

        A bad regex or an empty word list raises ``ValueError`` naming ``approve`` or ``reject``.
        """
        return cls(_pattern(approve, field="approve"), _pattern(reject, field="reject"))

    def classify(self, text: str) -> Literal["approved", "rejected"] | None:
        """``approved``, ``rejected`` or None (the reply says neither)."""
        if self.reject is not None and self.reject.search(text):
            return "rejected"
        if self.approve is None or self.approve.search(text):
            return "approved"
        return None


def gate_code(seed: str, digits: int = CODE_DIGITS) -> str:
    """A short per-gate code, the same for the same seed (so a retried send has the same text).

    >>> gate_code("acme/api/1234/1/deploy/sms")
    '2073'
    """
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return str(value % 10**digits).zfill(digits)


@dataclass(frozen=True)
class Gate:
    """One question waiting for an answer.

    ``sent_at`` is the provider's time for the gate's send (None: not reported yet, and
    no reply counts until it is); ``message_ids`` are the gate's outbound messages (one
    per recipient); ``approvers`` the E.164 numbers whose replies count (empty: anyone);
    ``code`` the per-gate code the question offers, if any.
    """

    sent_at: datetime | None
    message_ids: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    code: str | None = None


@dataclass(frozen=True)
class Outbound:
    """A message the provider reports it sent: ``to`` at ``at`` (the provider's time)."""

    message_id: str
    to: str
    at: datetime


@dataclass(frozen=True)
class GateVerdict:
    """How the gate stands: its decision, why, the deciding reply, and why others did not count."""

    decision: Decision
    reason: str
    reply: Reply | None = None
    passed: tuple[tuple[Reply, str], ...] = ()


def decide_gate(
    gate: Gate,
    replies: Iterable[Reply],
    *,
    words: ReplyWords | None = None,
    outbound: Iterable[Outbound] = (),
    open_for: timedelta = DEFAULT_OPEN_FOR,
) -> GateVerdict:
    """The first reply, in the provider's time order, that decides ``gate``; else undecided.

    ``outbound`` lists other messages the provider reports sending, so a reply without a
    code or thread is not taken while another gate may be open for its number.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    >>> gate = Gate(sent_at=at, message_ids=frozenset({"a"}), code="4821")
    >>> other = Outbound("b", "+61491570156", at)
    >>> bare = Reply("r1", "sandbox", "+61491570156", at + timedelta(seconds=30), "r1", text="YES")
    >>> decide_gate(gate, [bare], outbound=[other]).decision
    'undecided'
    >>> coded = replace(bare, event_id="r2", text="YES 4821")
    >>> print(decide_gate(gate, [bare, coded], outbound=[other]).reason)
    a reply from +614•••••156 carries the gate's code
    """
    words = words or ReplyWords()
    others = [o for o in outbound if o.message_id not in gate.message_ids]
    passed: list[tuple[Reply, str]] = []
    heard = sorted(replies, key=lambda r: (r.occurred_at, r.event_id))
    for reply in heard:
        decision, why = _judge(gate, reply, words, others, heard, open_for)
        if decision is not None:
            return GateVerdict(decision, f"a reply from {mask(reply.phone)} {why}", reply, tuple(passed))
        passed.append((reply, why))
    if gate.sent_at is None:
        reason = "waiting for the provider to report the gate's message"
    elif passed:
        reason = f"no reply decides the gate yet; the last one {passed[-1][1]}"
    else:
        reason = "no reply yet"
    return GateVerdict("undecided", reason, None, tuple(passed))


def _judge(
    gate: Gate, reply: Reply, words: ReplyWords, others: list[Outbound], heard: list[Reply], open_for: timedelta
) -> tuple[Literal["approved", "rejected"] | None, str]:
    """One reply's effect on the gate: a decision and why, or None and why it does not count."""
    if gate.approvers and reply.phone not in gate.approvers:
        return None, "is not from an approver"
    if gate.sent_at is None:
        return None, "came before the provider reported the gate's message; it is looked at again then"
    if reply.occurred_at < gate.sent_at:
        gap = (gate.sent_at - reply.occurred_at).total_seconds()
        return (
            None,
            f"was sent {gap:g}s before the gate's message (by the provider's clock), so it answers something else",
        )
    verdict = words.classify(reply.text)
    if verdict is None:
        return None, "matches neither pattern (the approve or reject words)"
    if gate.code:
        if re.search(rf"(?<!\d){re.escape(gate.code)}(?!\d)", reply.text):
            return verdict, "carries the gate's code"
        foreign = re.search(rf"(?<!\d)\d{{{len(gate.code)}}}(?!\d)", reply.text)
        if foreign:
            return None, f"carries the code {foreign.group()}, which is another gate's"
    if reply.in_reply_to is not None and gate.message_ids:
        if reply.in_reply_to in gate.message_ids:
            return verdict, "is threaded by the provider to the gate's message"
        return None, "is threaded by the provider to another message"
    rival = _rival(gate, gate.sent_at, reply, others, heard, open_for)
    if rival is not None:
        ask = f"reply with the gate's code ({gate.code})" if gate.code else "offer a per-gate code"
        return None, (
            f"carries no code, and another message went to that number at {rival.at.isoformat()} "
            f"(another gate may be open), so it decides no gate: {ask}"
        )
    return verdict, "answers the only open question to that number"


def _rival(
    gate: Gate, sent_at: datetime, reply: Reply, others: list[Outbound], heard: list[Reply], open_for: timedelta
) -> Outbound | None:
    """Another message to the reply's number that may be an open gate when the reply came.

    Any message reported after the gate's send, even after the reply: a provider may report
    a message only once delivered (Kudosity V2's polled feed), later than it went out, so
    a report after the reply does not prove the message went out after it. One sent
    before the gate counts only within ``open_for`` and if that number sent no reply
    between it and the gate: an answered question, like a notification someone replied
    to, is closed.

    A gate that names no messages cannot tell its own question from the others: one
    message reported after its start is presumed to be its question, and earlier ones
    are not looked at (their time may be off by the difference of the two clocks).
    """
    if not gate.message_ids:
        later = sorted((o for o in others if o.to == reply.phone and o.at >= sent_at), key=lambda o: o.at)
        return later[1] if len(later) > 1 else None
    for other in sorted(others, key=lambda o: o.at):
        if other.to != reply.phone or other.at < sent_at - open_for:
            continue
        if other.at >= sent_at:
            return other
        if not any(h.phone == reply.phone and other.at < h.occurred_at < sent_at for h in heard):
            return other
    return None


@dataclass
class Approval:
    """A gate's running state over a stream of events: feed it pages, ask for the verdict.

    The provider's time for the gate's send is the earliest report of any of its
    messages (:meth:`observe` of a ``Delivery``, e.g. from ``Client.status`` right after
    the send, or from the event feed); ``gate.sent_at``, if given, is used only when the
    gate names no messages.

    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    >>> approval = Approval(Gate(None, frozenset({"m1"})))
    >>> approval.observe([Delivery("d1", "sandbox", "+61491570156", at, "m1")])
    >>> approval.observe([Reply("r1", "sandbox", "+61491570156", at, "r1", text="OK")])
    >>> approval.verdict().decision
    'approved'
    """

    gate: Gate
    words: ReplyWords = field(default_factory=ReplyWords)
    open_for: timedelta = DEFAULT_OPEN_FOR
    replies: dict[str, Reply] = field(default_factory=dict)
    outbound: dict[str, Outbound] = field(default_factory=dict)

    def observe(self, events: Iterable[Event]) -> None:
        """Take in events (any kind; replies and delivery reports matter), in any order, repeats too."""
        for event in events:
            if isinstance(event, Reply):
                self.replies.setdefault(event.event_id, event)
            elif isinstance(event, Delivery) and event.message_id:
                seen = self.outbound.get(event.message_id)
                if seen is None or event.occurred_at < seen.at:
                    self.outbound[event.message_id] = Outbound(event.message_id, event.phone, event.occurred_at)

    @property
    def sent_at(self) -> datetime | None:
        """The provider's time for the gate's send, once reported."""
        if not self.gate.message_ids:
            return self.gate.sent_at
        times = [o.at for mid, o in self.outbound.items() if mid in self.gate.message_ids]
        return min(times) if times else None

    def verdict(self) -> GateVerdict:
        """The gate's decision over everything observed so far."""
        gate = replace(self.gate, sent_at=self.sent_at)
        return decide_gate(
            gate, self.replies.values(), words=self.words, outbound=self.outbound.values(), open_for=self.open_for
        )
