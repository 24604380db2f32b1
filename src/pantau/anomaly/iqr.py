"""IQR fences (Tukey): a point beyond q3 + k*IQR or below q1 - k*IQR of the trailing window.

Asymmetric where the robust z-score is symmetric: on skewed series (latencies, byte counts)
the upper fence sits further out than the lower one, as the data's own quartiles say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.anomaly.base import squash, squash_one
from pantau.anomaly.output import DetectorOutput
from pantau.anomaly.window import WindowStats


@dataclass(frozen=True, slots=True)
class IQRParams:
    k: float = 1.5  # Tukey's inner fence: score starts there ...
    k_half: float = 3.0  # ... and is 0.5 at the outer ("far out") fence
    rel_floor: float = 0.01  # the IQR is at least this fraction of |median|
    abs_floor: float = 1e-9


class IQRFences:
    name = "iqr"

    def __init__(self, params: IQRParams = IQRParams()) -> None:
        self.p = params

    def score(self, x: np.ndarray, stats: WindowStats) -> DetectorOutput:
        iqr = np.fmax(stats.q3 - stats.q1, np.fmax(self.p.rel_floor * np.abs(stats.median), self.p.abs_floor))
        upper, lower = stats.q3 + self.p.k * iqr, stats.q1 - self.p.k * iqr
        z = np.where(x > upper, (x - upper) / iqr, np.where(x < lower, (x - lower) / iqr, 0.0))
        z = np.where(np.isnan(z), 0.0, z)
        span = self.p.k_half - self.p.k
        return DetectorOutput(squash(z, 0.0, span), z, stats.median,
                              stats.q1 - self.p.k_half * iqr, stats.q3 + self.p.k_half * iqr)

    def score_one(self, x: float, median: float, q1: float, q3: float) -> tuple[float, ...]:
        if median != median:
            return 0.0, 0.0, median, median, median
        p = self.p
        iqr = max(q3 - q1, max(p.rel_floor * abs(median), p.abs_floor))
        upper, lower = q3 + p.k * iqr, q1 - p.k * iqr
        z = (x - upper) / iqr if x > upper else (x - lower) / iqr if x < lower else 0.0
        return (squash_one(z, 0.0, p.k_half - p.k), z, median, q1 - p.k_half * iqr, q3 + p.k_half * iqr)
