"""Event queue and virtual clock.

A heap of (time, sequence, callback) entries: the sequence number breaks ties in insertion order,
so two runs with the same seed execute events in the same order and produce identical reports.
Cancelled timers stay in the heap flagged dead (cheaper than removing them).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class Timer:
    """Handle of a scheduled event; ``cancel()`` makes it a no-op."""

    __slots__ = ("alive", "args", "fn", "t")

    def __init__(self, t: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.t, self.fn, self.args, self.alive = t, fn, args, True

    def cancel(self) -> None:
        self.alive = False

    def when(self) -> float:
        return self.t


class Engine:
    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._queue: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def at(self, t: float, fn: Callable[..., Any], *args: Any) -> Timer:
        timer = Timer(max(t, self.now), fn, args)
        heapq.heappush(self._queue, (timer.t, next(self._seq), timer))
        return timer

    def after(self, dt: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return self.at(self.now + dt, fn, *args)

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> float | None:
        """Run events up to ``deadline``; stop right after the event that makes ``until()`` true."""
        if until is not None and until():
            return self.now
        queue = self._queue
        while queue and queue[0][0] <= deadline:
            t, _, timer = heapq.heappop(queue)
            if not timer.alive:
                continue
            self.now = t
            self.events += 1
            timer.fn(*timer.args)
            if until is not None and until():
                return self.now
        self.now = max(self.now, deadline)
        return None


class SimClock:
    """The engine as the event-loop clock a protocol state machine expects (time, call_at)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def time(self) -> float:
        return self.engine.now

    def call_at(self, when: float, callback: Callable[[], Any], /) -> Timer:
        return self.engine.at(when, callback)
