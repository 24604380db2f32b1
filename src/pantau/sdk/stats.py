"""What the SDK did with the telemetry it was given: exported, dropped, queued, redacted.

Counters live in plain Python so that reading them needs no exporter (they matter most
exactly when the hub is unreachable). Increments on the hot path are single-threaded per
counter or taken under a lock only on the rare drop path, so the totals are exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SignalStats:
    """Counts for one signal (spans, logs or metric data points)."""

    name: str
    exported: int = 0
    dropped: int = 0
    export_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_exported(self, n: int) -> None:
        with self._lock:
            self.exported += n

    def add_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def add_failure(self) -> None:
        with self._lock:
            self.export_failures += 1

    def as_dict(self) -> dict[str, int]:
        return {"exported": self.exported, "dropped": self.dropped, "export_failures": self.export_failures}


class Stats:
    """All counters of one `pantau.init()`; `queued` is read live from the batchers."""

    def __init__(self) -> None:
        self.spans = SignalStats("spans")
        self.logs = SignalStats("logs")
        self.metrics = SignalStats("metric_points")
        self.queue_sizes: dict[str, Any] = {}
        self.redactor: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in (self.spans, self.logs, self.metrics):
            d = s.as_dict()
            size = self.queue_sizes.get(s.name)
            d["queued"] = size() if size else 0
            out[s.name] = d
        out["redactions"] = self.redactor.counts() if self.redactor is not None else {}
        return out


_current = Stats()


def current() -> Stats:
    return _current


def reset() -> Stats:
    """A fresh set of counters (each `init` after a `shutdown` starts from zero)."""
    global _current
    _current = Stats()
    return _current


def sdk_stats() -> dict[str, Any]:
    """Exported, dropped and queued counts per signal, and redactions per rule, since `init`.

    `dropped` counts every item lost: queue full, export failed, hub unreachable, or still
    queued when `shutdown` gave up. For spans, `exported + dropped + queued` equals the number
    of sampled spans ended, except for a batch being exported at that very moment.
    """
    return _current.as_dict()
