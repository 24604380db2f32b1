"""Robust z-score: distance from the trailing window's median in MADs.

Median and MAD ignore the outliers they are meant to find (a mean and standard deviation are
dragged towards them), so one spike does not hide the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.anomaly.base import squash, squash_one
from pantau.anomaly.output import DetectorOutput
from pantau.anomaly.window import WindowStats

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution, in standard deviations


@dataclass(frozen=True, slots=True)
class RobustZParams:
    z_min: float = 3.0  # below: score 0
    z_half: float = 6.0  # score 0.5
    rel_floor: float = 0.01  # the scale is at least this fraction of |median| ...
    abs_floor: float = 1e-9  # ... and this


def robust_scale(stats: WindowStats, rel_floor: float, abs_floor: float) -> np.ndarray:
    """The window's spread in the unit of one MAD. Quantised or flat series have MAD 0 (half the
    window is one value); fall back to the IQR, then to a fraction of the level, so that a
    change of one step on a flat line is not infinitely surprising."""
    scale = np.fmax(stats.mad, (stats.q3 - stats.q1) / (2 * 0.6745) / MAD_TO_SIGMA)
    return np.fmax(scale, np.fmax(rel_floor * np.abs(stats.median) / MAD_TO_SIGMA, abs_floor))


class RobustZ:
    name = "robust_z"

    def __init__(self, params: RobustZParams = RobustZParams()) -> None:
        self.p = params

    def score(self, x: np.ndarray, stats: WindowStats) -> DetectorOutput:
        scale = robust_scale(stats, self.p.rel_floor, self.p.abs_floor)
        z = (x - stats.median) / scale
        ok = ~np.isnan(z)
        z = np.where(ok, z, 0.0)
        half = self.p.z_half * scale
        return DetectorOutput(squash(z, self.p.z_min, self.p.z_half), z, stats.median,
                              stats.median - half, stats.median + half)

    def score_one(self, x: float, median: float, mad: float, q1: float, q3: float) -> tuple[float, ...]:
        """(score, z, expected, lower, upper) of one point (the streaming path)."""
        if median != median:  # still learning
            return 0.0, 0.0, median, median, median
        p = self.p
        scale = max(mad, (q3 - q1) / (2 * 0.6745) / MAD_TO_SIGMA)
        scale = max(scale, max(p.rel_floor * abs(median) / MAD_TO_SIGMA, p.abs_floor))
        z = (x - median) / scale
        half = p.z_half * scale
        return squash_one(z, p.z_min, p.z_half), z, median, median - half, median + half
