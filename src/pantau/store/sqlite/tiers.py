"""Retention per log severity, by keeping each retention in its own set of partitions.

Debug lines are most of the volume and the least needed a week later; errors are few and
wanted for months. A per-record delete would leave the files as large as before, so records
are routed at write time to a partition set per distinct retention (`logs` for the default,
`logs_r<seconds>` for the others), and each set drops whole files when its own horizon
passes. The directory name carries its retention, so data written under an earlier setting
keeps the retention it was written with until it expires.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from pantau.logs.severity import SEVERITY_CLASSES, severity_class

_TIER = re.compile(r"^logs_r(\d+)$")


def is_log_signal(signal: str) -> bool:
    return signal == "logs" or _TIER.match(signal) is not None


def tier_signal(retention_s: int, default_s: int) -> str:
    return "logs" if retention_s == default_s else f"logs_r{retention_s}"


def tier_retention(signal: str) -> int | None:
    m = _TIER.match(signal)
    return int(m.group(1)) if m else None


class SeverityTiers:
    """Which partition set each severity number's records go to."""

    def __init__(self, default_s: int, by_severity: dict[str, int], root: Path) -> None:
        self.default_s = default_s
        lookup = ["logs"] * 32  # severity 0 (unspecified) keeps the default retention
        for name, seconds in by_severity.items():
            lo, hi = SEVERITY_CLASSES[severity_class(name)]
            for n in range(lo, hi + 1):
                lookup[n] = tier_signal(int(seconds), default_s)
        self._lookup = np.array(lookup, dtype=object)
        self.uniform = len(set(lookup)) == 1
        # sets to read and expire: those written now, and those left by earlier settings
        existing = {p.name for p in root.glob("logs_r*") if p.is_dir() and tier_retention(p.name)}
        self.signals = sorted(set(lookup) | existing, key=lambda s: (s != "logs", s))

    def retention_s(self, signal: str) -> int:
        return tier_retention(signal) or self.default_s

    def split(self, severities: list[int], rows: list[int] | None) -> list[tuple[str, list[int] | None]]:
        """Rows of a batch by partition set; None means every row (the usual, one-set case)."""
        if self.uniform:
            return [("logs", rows)]
        idx = np.asarray(severities if rows is None else [severities[i] for i in rows], dtype=np.int64)
        targets = self._lookup[np.clip(idx, 0, 31)]
        first = targets[0] if len(targets) else "logs"
        if (targets == first).all():
            return [(first, rows)]
        out: dict[str, list[int]] = defaultdict(list)
        for i, signal in enumerate(targets.tolist()):
            out[signal].append(i if rows is None else rows[i])
        return list(out.items())
