"""Which inbound SMS start a DAG, and what the run receives: the rule behind ``SmsInboundTrigger``.

Anyone can text a number, so a rule always names the senders it accepts. On top
of that it may ask for a first word (``keywords``) and a regular expression
(``pattern``), and it may keep to one provider and to the numbers the messages
were sent to. A message that passes becomes a payload (:class:`InboundPayload`)
carrying the text, the sender, the time, the provider's ids and the pattern's
named groups:

>>> rule = InboundRule.build(allow=["+61491570156"], pattern=r"^RERUN (?P<job>\\w+)$")
>>> rule.test(sender="+61491570156", text="RERUN billing")
{'job': 'billing'}
>>> rule.test(sender="+61491570999", text="RERUN billing") is None
True

Pure Python with no Airflow import, so the DAG processor and the unit tests use it
as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smsrelay import Reply

__all__ = ["InboundPayload", "InboundRule"]

# The payload keys that hold phone numbers: masked in its repr, which Airflow logs.
_NUMBERS = ("from", "to")


class InboundPayload(dict[str, Any]):
    """A matching message as the triggered run receives it (the asset event's ``extra["payload"]``).

    A plain dict once stored; its repr (which the triggerer logs as "Trigger fired
    event") masks the phone numbers.

    >>> InboundPayload({"from": "+61491570156", "text": "RERUN billing"})
    InboundPayload({'from': '+614•••••156', 'text': 'RERUN billing'})
    """

    def __repr__(self) -> str:
        from smsrelay import mask_phone

        text = f"{type(self).__name__}({dict(self)!r})"
        for number in {self.get(k) for k in _NUMBERS}:
            if isinstance(number, str) and number:  # wherever it shows: its field, an id, the text
                text = text.replace(number, mask_phone(number))
        return text


def _numbers(values: Iterable[str] | str | None, field: str) -> frozenset[str]:
    """E.164 numbers from a list (or comma-separated text); a bad one names its place, masked."""
    from smsrelay import ConfigError, InvalidRequest, mask_phone, normalize_phone

    if values is None:
        return frozenset()
    if isinstance(values, str):  # "a, b" (a trailing comma is harmless)
        items = [v.strip() for v in values.split(",") if v.strip()]
    else:
        items = [str(v).strip() for v in values]
    out = set()
    for i, value in enumerate(items):
        try:
            out.add(normalize_phone(value))
        except InvalidRequest as exc:
            reason = exc.message.replace(value, mask_phone(value)) if value else exc.message
            raise ConfigError(
                f"{mask_phone(value)} is not a phone number ({reason}); use E.164", field=f"{field}[{i}]"
            ) from None
    return frozenset(out)


@dataclass(frozen=True)
class InboundRule:
    """Accept a message from ``allow`` whose first word is one of ``keywords`` and which ``pattern`` matches.

    - ``allow``: the senders, in E.164; required and never empty.
    - ``keywords``: the first word must be one of these (any case); empty: any text.
    - ``pattern``: a regular expression searched in the trimmed text (anchor it with
      ``^…$``; add ``(?i)`` to ignore case); its named groups reach the payload.
    - ``provider``: only this provider's messages (the connection's), when set.
    - ``to``: only messages sent to these numbers (your virtual numbers), when set.
    """

    allow: frozenset[str]
    keywords: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    provider: str | None = None
    to: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        allow: Iterable[str] | str | None,
        keywords: Iterable[str] | str | None = None,
        pattern: str | None = None,
        provider: str | None = None,
        to: Iterable[str] | str | None = None,
    ) -> InboundRule:
        """Validate the arguments a DAG author wrote; raise ``smsrelay.ConfigError`` naming the field.

        >>> InboundRule.build(allow=[])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        smsrelay.errors.ConfigError: field 'allow': is empty; name the numbers that may start this DAG (anyone ...
        """
        from smsrelay import ConfigError

        senders = _numbers(allow, "allow")
        if not senders:
            raise ConfigError(
                "is empty; name the numbers that may start this DAG (anyone can send an SMS)", field="allow"
            )
        words = [keywords] if isinstance(keywords, str) else list(keywords or ())
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word.strip() or len(word.split()) != 1:
                raise ConfigError(f"{word!r} is not one word", field=f"keywords[{i}]")
        compiled = None
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{pattern!r} is not a valid regular expression ({exc})", field="pattern") from None
        return cls(senders, tuple(w.strip() for w in words), compiled, provider or None, _numbers(to, "to"))

    def test(
        self, *, sender: str, text: str, provider: str | None = None, to: str | None = None
    ) -> dict[str, Any] | None:
        """The pattern's named groups if the message passes (``{}`` without groups), else None.

        >>> InboundRule.build(allow=["+61491570156"], keywords=["rerun"]).test(sender="+61491570156", text="Rerun all")
        {}
        """
        if sender not in self.allow:
            return None
        if self.provider is not None and provider is not None and provider != self.provider:
            return None
        if self.to and to not in self.to:
            return None
        body = text.strip()
        if self.keywords and self.keyword(body) is None:
            return None
        if self.pattern is None:
            return {}
        found = self.pattern.search(body)
        return None if found is None else {k: v for k, v in found.groupdict().items()}

    def asks(self, reply: Reply) -> bool:
        """True when ``reply`` passes every test but the sender's: a stranger (or a spoof) asking.

        >>> rule.asks(reply_from_a_stranger)  # doctest: +SKIP
        True
        """
        anyone = min(self.allow)
        return reply.phone not in self.allow and (
            self.test(sender=anyone, text=reply.text, provider=reply.provider, to=reply.to) is not None
        )

    def keyword(self, text: str) -> str | None:
        """The configured keyword that ``text`` starts with (as configured), or None."""
        first = text.split(maxsplit=1)[0].casefold() if text.strip() else ""
        return next((k for k in self.keywords if k.casefold() == first), None)

    def payload(self, reply: Reply) -> InboundPayload | None:
        """What the triggered run receives for ``reply``, or None if the rule rejects it.

        >>> rule.payload(reply)["groups"]  # doctest: +SKIP
        {'job': 'billing'}
        """
        groups = self.test(sender=reply.phone, text=reply.text, provider=reply.provider, to=reply.to)
        if groups is None:
            return None
        return InboundPayload(
            {
                "text": reply.text,
                "from": reply.phone,
                "to": reply.to,
                "occurred_at": reply.occurred_at.isoformat(),
                "provider": reply.provider,
                "message_id": reply.message_id,
                "event_id": reply.event_id,
                "in_reply_to": reply.in_reply_to,
                "keyword": self.keyword(reply.text.strip()),
                "groups": groups,
            }
        )
