"""Error bursts per service: far more error lines in a sliding window than the service
usually has. "Usually" is the service's own mean errors per window over the last hour, so a
chatty service with a steady trickle of errors does not page, and a quiet one does at
`min_count`. A service first seen (by its first error) less than `warmup_windows` ago has no
"usually" yet and cannot burst: after a hub restart every chatty service would."""

from __future__ import annotations

from collections import Counter, deque

from pantau.logs.detectors.base import Samples, body_text
from pantau.logs.detectors.config import ErrorBurstConfig
from pantau.model import LogRecord
from pantau.store.base import Event

_ERROR_TEXT = {"error", "err", "fatal", "critical", "crit", "alert", "emerg", "emergency", "severe"}


def is_error(record: LogRecord, min_severity: int) -> bool:
    return is_error_level(record.severity_number, record.severity_text, min_severity)


def is_error_level(severity_number: int, severity_text: str, min_severity: int) -> bool:
    if severity_number:
        return severity_number >= min_severity
    return severity_text.lower() in _ERROR_TEXT


class _Burst:
    __slots__ = ("count", "id", "messages", "peak", "samples", "start_ns", "threshold")

    def __init__(self, id: str, start_ns: int, threshold: int, samples: int) -> None:
        self.id, self.start_ns, self.threshold = id, start_ns, threshold
        self.count = self.peak = 0
        self.samples = Samples(samples)
        self.messages: Counter[str] = Counter()


class _Service:
    __slots__ = ("buckets", "burst", "first_bucket", "recent")

    def __init__(self, first_bucket: int) -> None:
        self.recent: deque[tuple[int, LogRecord]] = deque()  # errors in the sliding window
        self.buckets: dict[int, int] = {}  # errors per window-sized bucket, for the baseline
        self.first_bucket = first_bucket
        self.burst: _Burst | None = None


class ErrorBurstDetector:
    kind = "log_pattern"

    def __init__(self, config: ErrorBurstConfig, samples: int = 5) -> None:
        self.config = config
        self.samples = samples
        self.window_ns = int(config.window_seconds * 1e9)
        self._services: dict[str, _Service] = {}

    def observe(self, record: LogRecord) -> list[Event]:
        if not is_error(record, self.config.min_severity):
            return []
        t = record.timestamp_ns
        bucket = t // self.window_ns
        svc = self._services.get(record.service)
        if svc is None:
            svc = self._services[record.service] = _Service(bucket)
        svc.buckets[bucket] = svc.buckets.get(bucket, 0) + 1
        svc.recent.append((t, record))
        events = self._slide(record.service, svc, t)
        burst = svc.burst
        if burst is not None:
            burst.count += 1
            burst.peak = max(burst.peak, len(svc.recent))
            burst.samples.add(record)
            burst.messages[body_text(record)[:120]] += 1
            return events
        threshold = self._threshold(svc, bucket)
        if len(svc.recent) >= threshold and bucket - svc.first_bucket >= self.config.warmup_windows:
            burst = svc.burst = _Burst(f"errburst-{record.service}-{svc.recent[0][0]}", svc.recent[0][0],
                                       threshold, self.samples)
            for _, r in svc.recent:
                burst.count += 1
                burst.samples.add(r)
                burst.messages[body_text(r)[:120]] += 1
            burst.peak = len(svc.recent)
            events.append(self._event(record.service, burst, None))
        return events

    def tick(self, now_ns: int) -> list[Event]:
        events: list[Event] = []
        for name, svc in self._services.items():
            events += self._slide(name, svc, now_ns)
            oldest = now_ns // self.window_ns - self.config.baseline_windows - 1
            for b in [b for b in svc.buckets if b < oldest]:
                del svc.buckets[b]
        return events

    def _slide(self, name: str, svc: _Service, now_ns: int) -> list[Event]:
        recent = svc.recent
        while recent and recent[0][0] <= now_ns - self.window_ns:
            recent.popleft()
        burst = svc.burst
        if burst is not None and len(recent) < burst.threshold / 2:
            svc.burst = None
            return [self._event(name, burst, now_ns)]
        return []

    def _threshold(self, svc: _Service, bucket: int) -> int:
        cfg = self.config
        first = max(svc.first_bucket, bucket - cfg.baseline_windows)
        windows = bucket - first
        mean = sum(c for b, c in svc.buckets.items() if first <= b < bucket) / windows if windows else 0.0
        return max(cfg.min_count, int(cfg.factor * mean) + 1)

    def _event(self, service: str, burst: _Burst, end_ns: int | None) -> Event:
        window = self.config.window_seconds
        return Event(
            self.kind, burst.start_ns, id=burst.id, end_ns=end_ns, severity="warning",
            title=f"Error burst in {service}: {burst.peak} errors in {window:g}s (threshold {burst.threshold})",
            labels={"service": service, "detector": "error_burst"},
            data={"count": burst.count, "peak_in_window": burst.peak, "threshold": burst.threshold,
                  "window_seconds": window, "top_messages": burst.messages.most_common(5),
                  "samples": burst.samples.items})
