"""Refuse locally what the provider would refuse, before any request.

The checks read only the adapter's :class:`~smsrelay.model.Capabilities`, so every
integration (the CLI, the Action, Airflow, the bridge) and every dry run gets the
same answer the real send would get. A setting that makes the whole send fail is a
``ConfigError`` naming the field (``sender``), so each integration can say it in
its own words (the CLI's ``--from``, the Action's ``from`` input); a recipient the
provider cannot reach is one rejected result, and the rest of the batch goes on.

>>> caps = Capabilities(requires_sender=True, countries=frozenset({"TH"}))
>>> unreachable(caps, "mesms", "+61491570156")
'mesms reaches only numbers in TH (+66); this number is in AU (+61)'
>>> unreachable(caps, "mesms", "+66812345678") is None
True
"""

from __future__ import annotations

import phonenumbers

from smsrelay.errors import ConfigError, InvalidRequest
from smsrelay.model import Capabilities, Message
from smsrelay.phone import region_of

__all__ = ["check_message", "check_sender", "unreachable"]


def check_sender(caps: Capabilities, provider: str, sender: str | None) -> None:
    """Raise ``ConfigError`` (``field="sender"``) if the provider would refuse this sender.

    >>> check_sender(Capabilities(requires_sender=True), "kudosity", None)
    Traceback (most recent call last):
    ...
    smsrelay.errors.ConfigError: field 'sender': kudosity needs a sender, and none was given
    """
    if not sender:
        if caps.requires_sender:
            raise ConfigError(f"{provider} needs a sender, and none was given", field="sender", provider=provider)
        return
    limit = caps.sender_max_chars
    # A sender of digits is a phone number; only alphanumeric sender ids have a length cap.
    if limit is not None and not sender.lstrip("+").isdigit() and len(sender) > limit:
        raise ConfigError(
            f"the sender {sender!r} is {len(sender)} characters; {provider} takes at most {limit}",
            field="sender",
            provider=provider,
        )


def check_message(caps: Capabilities, provider: str, message: Message) -> None:
    """Raise ``InvalidRequest`` (naming the field) for what the message asks and the provider cannot do.

    >>> check_message(Capabilities(), "kaleyra", Message("Hi", track_links=True))
    Traceback (most recent call last):
    ...
    smsrelay.errors.InvalidRequest: kaleyra does not track links; send without track_links
    """
    if message.track_links and not caps.link_tracking:
        # Sent anyway, the links would go out untracked and no link hit would ever come.
        raise InvalidRequest(f"{provider} does not track links; send without track_links", field="track_links")


def unreachable(caps: Capabilities, provider: str, e164: str) -> str | None:
    """Why the provider cannot deliver to ``e164`` (a normalised number), or None if it can.

    The reason names countries, never the number, so it is safe to log.
    """
    if caps.countries is None:
        return None
    region = region_of(e164) or "unknown"
    if region in caps.countries:
        return None
    reach = ", ".join(_country(code) for code in sorted(caps.countries))
    return f"{provider} reaches only numbers in {reach}; this number is in {_country(region)}"


def _country(region: str) -> str:
    # Codes, not names: the Action's image ships phonenumbers without its geocoding data.
    code = phonenumbers.country_code_for_region(region)
    return f"{region} (+{code})" if code else region
