"""The status lifecycle's one merge rule, used everywhere a status is stored.

A non-final status never overwrites a final one, and an older event never
overwrites a newer one. The rule is a maximum over a total order, so merging the
same events in any order gives the same result: a ``sent`` that arrives late never
overwrites ``delivered``.

>>> from datetime import datetime, UTC
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> d = Delivery("e1", "sandbox", "+61491570156", t, "m1", status=Status.DELIVERED)
>>> s = Delivery("e2", "sandbox", "+61491570156", t, "m1", status=Status.SENT)
>>> merge(d, s).status
<Status.DELIVERED: 'delivered'>
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from smsrelay.model import Delivery, Status

__all__ = ["PROGRESS", "merge", "merge_all", "precedence", "supersedes"]

# How far along the lifecycle a status is; breaks ties between equal timestamps.
PROGRESS: dict[Status, int] = {
    Status.SCHEDULED: 0,
    Status.QUEUED: 1,
    Status.SENT: 2,
    Status.UNKNOWN: 3,
    Status.CANCELLED: 4,
    Status.EXPIRED: 5,
    Status.REJECTED: 6,
    Status.FAILED: 7,
    Status.DELIVERED: 8,
}


def precedence(status: Status, occurred_at: datetime, tiebreak: str = "") -> tuple[bool, datetime, int, str]:
    """The sort key of the merge rule: final first, then newer, then further along.

    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> precedence(Status.SENT, t) < precedence(Status.DELIVERED, t)
    True
    """
    return (status.final, occurred_at, PROGRESS[status], tiebreak)


def supersedes(
    new_status: Status,
    new_at: datetime,
    old_status: Status | None,
    old_at: datetime | None,
) -> bool:
    """True when a stored ``old`` status should be replaced by ``new``.

    For stores that keep only a status and its time (e.g. a Salesforce record).

    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> supersedes(Status.SENT, t, Status.DELIVERED, t)
    False
    """
    if old_status is None or old_at is None:
        return True
    return precedence(new_status, new_at) > precedence(old_status, old_at)


def merge(current: Delivery | None, incoming: Delivery) -> Delivery:
    """The report that wins between ``current`` (may be None) and ``incoming``."""
    if current is None:
        return incoming
    a = precedence(current.status, current.occurred_at, current.event_id)
    b = precedence(incoming.status, incoming.occurred_at, incoming.event_id)
    return incoming if b > a else current


def merge_all(reports: Iterable[Delivery]) -> dict[str, Delivery]:
    """Fold reports into the winning report per message id.

    >>> merge_all([])
    {}
    """
    out: dict[str, Delivery] = {}
    for r in reports:
        key = r.message_id or r.event_id
        out[key] = merge(out.get(key), r)
    return out
