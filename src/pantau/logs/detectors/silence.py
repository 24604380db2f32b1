"""A service whose log volume drops to nothing: it crashed, hangs, lost its exporter, or its
logs are going somewhere else. Only services that usually log (at least
`min_lines_per_minute` over their recent history) count, so a batch job that logs once an
hour is not "silent". Needs `tick()` with the current time: silence has no record to observe.
"""

from __future__ import annotations

from dataclasses import replace

from pantau.logs.detectors.config import SilenceConfig
from pantau.model import LogRecord
from pantau.store.base import Event

_MINUTE = 60_000_000_000


class _Service:
    __slots__ = ("first_ns", "last_ns", "minutes", "silence")

    def __init__(self, t: int) -> None:
        self.first_ns = self.last_ns = t
        self.minutes: dict[int, int] = {}
        self.silence: Event | None = None


class SilenceDetector:
    kind = "log_pattern"

    def __init__(self, config: SilenceConfig, samples: int = 5) -> None:
        self.config = config
        self._services: dict[str, _Service] = {}

    def observe(self, record: LogRecord) -> list[Event]:
        return self.count(record.service, record.timestamp_ns)

    def count(self, service: str, t: int) -> list[Event]:
        """A line from `service` at `t` (all this detector needs of a record)."""
        svc = self._services.get(service)
        if svc is None:
            svc = self._services[service] = _Service(t)
        minute = t // _MINUTE
        svc.minutes[minute] = svc.minutes.get(minute, 0) + 1
        if t > svc.last_ns:
            svc.last_ns = t
        if svc.silence is not None and t > svc.silence.start_ns:
            silence, svc.silence = svc.silence, None
            title = silence.title.replace("stopped logging", "stopped logging (resumed)")
            return [replace(silence, end_ns=t, title=title, data={**silence.data, "resumed_ns": t})]
        return []

    def tick(self, now_ns: int) -> list[Event]:
        cfg = self.config
        events = []
        silent_ns = int(cfg.silent_after_seconds * 1e9)
        for name, svc in self._services.items():
            last_minute = svc.last_ns // _MINUTE
            oldest = last_minute - cfg.history_minutes
            for m in [m for m in svc.minutes if m <= oldest]:
                del svc.minutes[m]
            if svc.silence is not None or now_ns - svc.last_ns < silent_ns:
                continue
            # the usual volume: lines per minute over the history before the last line (or since first seen)
            span = min(cfg.history_minutes, max(1, last_minute - svc.first_ns // _MINUTE + 1))
            rate = sum(svc.minutes.values()) / span
            if span < min(cfg.history_minutes, 5) or rate < cfg.min_lines_per_minute:
                continue
            silent_for = (now_ns - svc.last_ns) / 1e9
            svc.silence = Event(
                self.kind, svc.last_ns, id=f"silence-{name}-{svc.last_ns}", severity="warning",
                title=f"{name} stopped logging: nothing for {silent_for:.0f}s (usually {rate:.1f} lines/min)",
                labels={"service": name, "detector": "log_silence"},
                data={"last_line_ns": svc.last_ns, "usual_lines_per_minute": round(rate, 3),
                      "history_minutes": span, "silent_after_seconds": cfg.silent_after_seconds})
            events.append(svc.silence)
        return events
