"""Built-in log detectors: error bursts, brute force, injection, privilege changes, silence.

`DetectorSet` runs the enabled ones over each log record (`observe`) and on a clock
(`tick`), and returns `pantau.store.base.Event`s carrying their evidence (sample records,
counts, window). Events with the same id are one event updated over time (an error burst is
raised when it starts and updated with its end). Not thread-safe: one caller feeds it.
"""

from __future__ import annotations

from pantau.logs.detectors.base import Detector
from pantau.logs.detectors.brute_force import BruteForceDetector
from pantau.logs.detectors.config import DetectorsConfig
from pantau.logs.detectors.error_burst import ErrorBurstDetector
from pantau.logs.detectors.injection import InjectionDetector
from pantau.logs.detectors.privilege import PrivilegeDetector
from pantau.logs.detectors.silence import SilenceDetector
from pantau.model import LogRecord
from pantau.store.base import Event

__all__ = ["DetectorSet", "DetectorsConfig"]


class DetectorSet:
    def __init__(self, config: DetectorsConfig | None = None) -> None:
        self.config = cfg = config or DetectorsConfig()
        self.detectors: list[Detector] = []
        for enabled, make, sub in [
            (cfg.error_burst.enabled, ErrorBurstDetector, cfg.error_burst),
            (cfg.brute_force.enabled, BruteForceDetector, cfg.brute_force),
            (cfg.injection.enabled, InjectionDetector, cfg.injection),
            (cfg.privilege.enabled, PrivilegeDetector, cfg.privilege),
            (cfg.silence.enabled, SilenceDetector, cfg.silence),
        ]:
            if enabled:
                self.detectors.append(make(sub, cfg.samples))

    def observe(self, record: LogRecord) -> list[Event]:
        events: list[Event] = []
        for detector in self.detectors:
            events += detector.observe(record)
        return events

    def tick(self, now_ns: int) -> list[Event]:
        events: list[Event] = []
        for detector in self.detectors:
            events += detector.tick(now_ns)
        return events
