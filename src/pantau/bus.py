"""The hub's in-process bus: components announce what happened ("new data", an anomaly, a new
log pattern, an alert) without knowing who listens.

Publishing never blocks and never fails the publisher: a subscriber that raises is logged and
skipped. Subscribers run on the publisher's thread, so they must be quick; slow work belongs
on the subscriber's own thread or task (`subscribe_queue` hands events to an asyncio queue).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pantau.bus")

Handler = Callable[[str, Any], None]


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call `handler(topic, payload)` for each event on `topic` ("*": every topic).
        Returns a function that unsubscribes."""
        with self._lock:
            self._handlers[topic].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers[topic]:
                    self._handlers[topic].remove(handler)

        return unsubscribe

    def subscribe_queue(self, topic: str, loop: asyncio.AbstractEventLoop,
                        maxsize: int = 10_000) -> tuple[asyncio.Queue, Callable[[], None]]:
        """Events of `topic` delivered into an asyncio queue on `loop` (oldest dropped when full)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize)

        def put(t: str, payload: Any) -> None:
            if queue.full():
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            queue.put_nowait((t, payload))

        return queue, self.subscribe(topic, lambda t, p: loop.call_soon_threadsafe(put, t, p))

    def publish(self, topic: str, payload: Any) -> None:
        with self._lock:
            handlers = list(self._handlers.get(topic, ())) + list(self._handlers.get("*", ()))
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("bus subscriber failed on %s", topic)
