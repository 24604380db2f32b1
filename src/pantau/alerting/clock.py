"""Time as the alerting code sees it, injectable so tests can drive group_wait,
repeat_interval, escalation delays and silence expiry without sleeping."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock time in seconds since the epoch; `sleep` waits on the event loop."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock(Clock):
    """A clock that moves only when told to: `advance(s)` wakes every sleeper whose time came."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._now += seconds
        due = [f for t, f in self._sleepers if t <= self._now]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._now]
        for fut in due:
            if not fut.done():
                fut.set_result(None)
