"""EWMA with adaptive variance: an exponentially weighted mean and variance that follow the
series, so the band widens when the series gets noisier and narrows when it calms down.

It forgets geometrically (half-life ~ln 2 / alpha points) where the window detectors forget
abruptly, so it reacts to variance changes the window has not caught up with yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.anomaly.base import ewm, squash, squash_one
from pantau.anomaly.output import DetectorOutput


@dataclass(frozen=True, slots=True)
class EWMAParams:
    alpha: float = 0.05  # weight of each new point in the mean and the variance
    z_min: float = 3.0
    z_half: float = 6.0
    min_points: int = 24
    rel_floor: float = 0.005  # the standard deviation is at least this fraction of |mean|
    abs_floor: float = 1e-9


class EWMA:
    name = "ewma"

    def __init__(self, params: EWMAParams = EWMAParams()) -> None:
        self.p = params
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    def state(self) -> tuple[float, float, int]:
        return self.mean, self.var, self.count

    def load(self, mean: float, var: float, count: int) -> None:
        self.mean, self.var, self.count = float(mean), float(var), int(count)

    def score(self, x: np.ndarray) -> DetectorOutput:
        n = len(x)
        if n == 0:
            return DetectorOutput.empty(0)
        a = self.p.alpha
        # the first value of a series' life seeds the mean
        m0 = float(x[0]) if self.count == 0 else self.mean
        mean = ewm(x, a, m0)
        prev_mean = np.concatenate([[m0], mean[:-1]])
        var = ewm((x - prev_mean) ** 2, a, self.var)
        prev_var = np.concatenate([[self.var], var[:-1]])
        sd = np.sqrt(prev_var)
        sd = np.fmax(sd, np.fmax(self.p.rel_floor * np.abs(prev_mean), self.p.abs_floor))
        z = (x - prev_mean) / sd
        seen = self.count + np.arange(n)
        z = np.where(seen >= self.p.min_points, z, 0.0)
        half = self.p.z_half * sd
        learning = seen < self.p.min_points
        out = DetectorOutput(squash(z, self.p.z_min, self.p.z_half), z,
                             np.where(learning, np.nan, prev_mean),
                             np.where(learning, np.nan, prev_mean - half),
                             np.where(learning, np.nan, prev_mean + half))
        self.mean, self.var, self.count = float(mean[-1]), float(var[-1]), self.count + n
        return out

    def score_one(self, x: float) -> tuple[float, ...]:
        p = self.p
        a = p.alpha
        m0 = x if self.count == 0 else self.mean
        v0 = self.var
        sd = max(v0 ** 0.5, max(p.rel_floor * abs(m0), p.abs_floor))
        learning = self.count < p.min_points
        z = 0.0 if learning else (x - m0) / sd
        self.mean = (1 - a) * m0 + a * x
        self.var = (1 - a) * v0 + a * (x - m0) ** 2
        self.count += 1
        if learning:
            nan = float("nan")
            return 0.0, 0.0, nan, nan, nan
        half = p.z_half * sd
        return squash_one(z, p.z_min, p.z_half), z, m0, m0 - half, m0 + half
