"""The bounded queue between receivers and the single writer thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pantau.store.base import Overloaded, StoreClosed


class WriteQueue:
    """Items wait here until the writer commits them.

    Capacity counts telemetry items (spans, records, samples) that are queued *or* being
    committed, so it bounds the memory held for unacknowledged data. A batch bigger than the
    whole capacity is still accepted when the queue is empty, so no valid request can be
    refused forever.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cond = threading.Condition()
        self._items: deque[tuple[Any, int, Future]] = deque()
        self._held = 0
        self.closed = False

    def put(self, item: Any, size: int) -> Future:
        future: Future = Future()
        with self._cond:
            if self.closed:
                raise StoreClosed("pantau is shutting down and accepts no more data")
            if self._held and self._held + size > self.capacity:
                raise Overloaded(
                    f"write queue full ({self._held} of {self.capacity} items waiting to be stored)",
                    retry_after=1.0)
            self._items.append((item, size, future))
            self._held += size
            self._cond.notify()
        return future

    def put_control(self, action: Callable[[], Any]) -> Future:
        """Run `action` on the writer thread, in order with the writes (maintenance, retention)."""
        future: Future = Future()
        with self._cond:
            if self.closed:
                raise StoreClosed("pantau is shutting down")
            self._items.append((action, 0, future))
            self._cond.notify()
        return future

    def take(self, max_items: int, timeout: float) -> list[tuple[Any, int, Future]]:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            out: list[tuple[Any, int, Future]] = []
            total = 0
            while self._items and (not out or total + self._items[0][1] <= max_items):
                entry = self._items.popleft()
                out.append(entry)
                total += entry[1]
                if entry[1] == 0:  # a control action runs on its own, in order
                    break
            return out

    def done(self, size: int) -> None:
        with self._cond:
            self._held -= size

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def held(self) -> int:
        return self._held

    @property
    def empty(self) -> bool:
        with self._cond:
            return not self._items
