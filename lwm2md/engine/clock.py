"""Injected time: a clock that schedules callbacks and sleeps.

The daemon uses :class:`LoopClock` (the asyncio loop's monotonic time);
tests use :class:`FakeClock`, which only moves when told to.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time in seconds plus scheduling on it."""

    def now(self) -> float: ...

    def wall(self) -> float:
        """Wall-clock Unix time (for timestamps on the wire)."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...

    async def sleep(self, delay: float) -> None: ...


class LoopClock:
    """The real clock: asyncio's loop time and loop timers."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))


class _FakeHandle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only through :meth:`advance`; deterministic for tests.

    Callbacks due at the same time run in the order they were scheduled.
    ``wall()`` is ``wall_offset + now()``.
    """

    def __init__(self, start: float = 0.0, wall_offset: float = 1_700_000_000.0) -> None:
        self._now = start
        self.wall_offset = wall_offset
        self._queue: list[tuple[float, int, _FakeHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self.wall_offset + self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _FakeHandle()
        heapq.heappush(self._queue, (when, next(self._seq), handle, callback))
        return handle

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_at(self._now + max(0.0, delay), wake)
        try:
            await future
        finally:
            handle.cancel()

    def next_deadline(self) -> float | None:
        """When the earliest pending callback is due, or None."""
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    async def settle(self) -> None:
        """Let the event loop run every task that is ready (no time passes)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, delay: float) -> None:
        """Move time forward by ``delay``, running due callbacks and ready tasks in order."""
        target = self._now + delay
        await self.settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            when, _, handle, callback = heapq.heappop(self._queue)
            self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
            await self.settle()
        self._now = target
        await self.settle()
