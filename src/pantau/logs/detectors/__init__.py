"""Built-in log detectors: error bursts, brute force, injection, privilege changes, silence.

`DetectorSet` runs the enabled ones over each log record (`observe`) and on a clock
(`tick`), and returns `pantau.store.base.Event`s carrying their evidence (sample records,
counts, window). Events with the same id are one event updated over time (an error burst is
raised when it starts and updated with its end). Not thread-safe: one caller feeds it.
"""

from __future__ import annotations

from collections.abc import Callable

from pantau.logs.detectors.base import Detector
from pantau.logs.detectors.brute_force import BruteForceDetector
from pantau.logs.detectors.config import DetectorsConfig
from pantau.logs.detectors.error_burst import ErrorBurstDetector, is_error_level
from pantau.logs.detectors.injection import InjectionDetector
from pantau.logs.detectors.prefilter import DETECTOR_KEYS, BodyPrefilter
from pantau.logs.detectors.privilege import PrivilegeDetector
from pantau.logs.detectors.silence import SilenceDetector
from pantau.model import LogBatch, LogRecord
from pantau.store.base import Event

__all__ = ["DetectorSet", "DetectorsConfig"]


class DetectorSet:
    def __init__(self, config: DetectorsConfig | None = None, prefilter: bool = True) -> None:
        self.config = cfg = config or DetectorsConfig()
        self.detectors: list[Detector] = []
        # what observe_batch needs to know to skip records no detector can act on
        self._reads_bodies = cfg.brute_force.enabled or cfg.injection.enabled or cfg.privilege.enabled
        self._prefilter = BodyPrefilter.build() if prefilter and self._reads_bodies else None
        self._silence: SilenceDetector | None = None
        for enabled, make, sub in [
            (cfg.error_burst.enabled, ErrorBurstDetector, cfg.error_burst),
            (cfg.brute_force.enabled, BruteForceDetector, cfg.brute_force),
            (cfg.injection.enabled, InjectionDetector, cfg.injection),
            (cfg.privilege.enabled, PrivilegeDetector, cfg.privilege),
            (cfg.silence.enabled, SilenceDetector, cfg.silence),
        ]:
            if enabled:
                self.detectors.append(make(sub, cfg.samples))
        self._silence = next((d for d in self.detectors if isinstance(d, SilenceDetector)), None)

    def observe(self, record: LogRecord) -> list[Event]:
        events: list[Event] = []
        for detector in self.detectors:
            events += detector.observe(record)
        return events

    def observe_batch(self, batch: LogBatch, record: Callable[[int], LogRecord]) -> list[Event]:
        """`observe` for every record of a committed batch, building (`record(i)`) only those
        some detector can act on: errors, records with an attribute a detector reads, and
        bodies the prefilter flags. The others are only counted (silence). Same events as
        observing each record."""
        if not self.detectors:
            return []
        n = len(batch)
        if self._reads_bodies:
            candidates = self._prefilter.candidates(batch.body) if self._prefilter is not None else None
        else:
            candidates = set()
        errors = self.config.error_burst
        min_severity = errors.min_severity
        events: list[Event] = []
        for i in range(n):
            if (candidates is None or i in candidates or DETECTOR_KEYS.search(batch.payload[i])
                    or (errors.enabled and is_error_level(batch.severity_number[i], batch.severity_text[i],
                                                          min_severity))):
                events += self.observe(record(i))
            elif self._silence is not None:
                events += self._silence.count(batch.service[i], batch.time_ns[i])
        return events

    def tick(self, now_ns: int) -> list[Event]:
        events: list[Event] = []
        for detector in self.detectors:
            events += detector.tick(now_ns)
        return events
