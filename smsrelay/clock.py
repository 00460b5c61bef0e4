"""Injectable clocks, so simulated time can be driven by tests instead of sleeps.

>>> c = ManualClock()
>>> before = c.now(); _ = c.advance(5); (c.now() - before).total_seconds()
5.0

:class:`ScaledClock` runs real time faster, so a run that takes hours against a real API's
rate limit (SMSKit's 100 requests an hour) takes seconds while every wait stays real.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    """Anything that tells the time (UTC) and can wait."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told; ``sleep`` advances it instantly."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


class ScaledClock:
    """Simulated time that runs ``speed`` times faster than real time.

    ``now()`` is ``start + (time.time() - epoch) * speed``: two processes given the same
    ``speed`` and ``epoch`` agree on the time, so a client and an emulator in another
    process share one simulated clock. ``sleep(s)`` waits ``s / speed`` real seconds.
    ``epoch`` defaults to the moment of construction, ``start`` to that moment in UTC.
    It holds no mutable state, so it is safe to share between threads.

    >>> epoch = time.time()
    >>> a, b = ScaledClock(100, epoch=epoch), ScaledClock(100, epoch=epoch)
    >>> abs((a.now() - b.now()).total_seconds()) < 1  # both read the same simulated time
    True
    >>> real = time.monotonic(); a.sleep(5); 0.04 <= time.monotonic() - real < 1  # 5 s at 100×
    True
    """

    def __init__(self, speed: float, *, epoch: float | None = None, start: datetime | None = None) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"a clock speed is a positive number, got {speed!r}")
        if epoch is not None and not math.isfinite(epoch):
            raise ValueError(f"a clock epoch is a Unix time in seconds, got {epoch!r}")
        if start is not None and start.tzinfo is None:
            raise ValueError("a clock start needs a timezone (UTC)")
        self.speed = float(speed)
        self.epoch = time.time() if epoch is None else float(epoch)
        self.start = datetime.fromtimestamp(self.epoch, UTC) if start is None else start.astimezone(UTC)

    def __repr__(self) -> str:
        return f"ScaledClock({self.speed:g}, epoch={self.epoch!r}, start={self.start.isoformat()!r})"

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)
