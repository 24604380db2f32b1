"""Trend and change-point detection: a two-sided CUSUM of the robust z-scores.

One unusual point moves the sums by at most `clip`; a level shift or a slow drift keeps adding
(z - k) every point, so the sum crosses `h` after a few points of a large shift or many of a
small one. That catches what point detectors miss: changes too small to stand out one point at
a time, and ramps the trailing window keeps following. The sums are reflected at 0 (Page's
CUSUM), evaluated for a whole block at once with Lindley's identity (it holds for any steps).

Unlike the textbook CUSUM, a point that does not push a sum also drains it by `drain`: once a
shift is over, the sum falls back within a few points instead of (sum / k) points, so the
anomaly it raised ends when the level returns rather than long after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.anomaly.base import reflected_walk, squash, squash_one
from pantau.anomaly.output import DetectorOutput


@dataclass(frozen=True, slots=True)
class CUSUMParams:
    k: float = 0.5  # allowance: drift per point that is ignored (in robust z units)
    h: float = 12.0  # decision level: score 0.5
    clip: float = 4.0  # largest step one point may add (one spike alone never decides)
    drain: float = 3.0  # extra decrease per point that does not push the sum: a shift that ended is forgotten fast


class CUSUM:
    name = "cusum"

    def __init__(self, params: CUSUMParams = CUSUMParams()) -> None:
        self.p = params
        self.up = 0.0
        self.down = 0.0
        self.up_since = 0  # timestamp (ms) when the current excursion started
        self.down_since = 0

    def state(self) -> tuple[float, float, int, int]:
        return self.up, self.down, self.up_since, self.down_since

    def load(self, up: float, down: float, up_since: int, down_since: int) -> None:
        self.up, self.down, self.up_since, self.down_since = float(up), float(down), int(up_since), int(down_since)

    def score(self, t_ms: np.ndarray, robust_z: np.ndarray, valid: np.ndarray) -> tuple[DetectorOutput, np.ndarray]:
        """Scores, and per point the time the excursion that is being measured started."""
        n = len(robust_z)
        if n == 0:
            return DetectorOutput.empty(0), np.zeros(0, dtype=np.int64)
        zc = np.clip(robust_z, -self.p.clip, self.p.clip)
        k, drain = self.p.k, self.p.drain
        up_step = np.where(zc < k, zc - k - drain, zc - k)  # a point not pushing up drains the up-sum
        down_step = np.where(-zc < k, -zc - k - drain, -zc - k)
        up = reflected_walk(np.where(valid, up_step, 0.0), self.up)
        down = reflected_walk(np.where(valid, down_step, 0.0), self.down)
        z = np.where(up >= down, up, -down)
        up_since = _since(t_ms, up, self.up_since)
        down_since = _since(t_ms, down, self.down_since)
        since = np.where(up >= down, up_since, down_since)
        self.up, self.down = float(up[-1]), float(down[-1])
        self.up_since, self.down_since = int(up_since[-1]), int(down_since[-1])
        nan = np.full(n, np.nan)
        return DetectorOutput(squash(z, self.p.h / 2, self.p.h), z, nan, nan.copy(), nan.copy()), since

    def score_one(self, t_ms: int, robust_z: float, valid: bool) -> tuple[float, float, int]:
        """(score, signed sum, excursion start) of one point."""
        p = self.p
        zc = min(max(robust_z, -p.clip), p.clip)
        up_step = zc - p.k - (p.drain if zc < p.k else 0.0)
        down_step = -zc - p.k - (p.drain if -zc < p.k else 0.0)
        up = max(0.0, self.up + (up_step if valid else 0.0))
        down = max(0.0, self.down + (down_step if valid else 0.0))
        if up <= 0.0:
            self.up_since = t_ms
        if down <= 0.0:
            self.down_since = t_ms
        self.up, self.down = up, down
        z = up if up >= down else -down
        since = self.up_since if up >= down else self.down_since
        return squash_one(z, p.h / 2, p.h), z, since


def _since(t_ms: np.ndarray, s: np.ndarray, carried: int) -> np.ndarray:
    """Time of the last point at which the sum was 0 (the excursion's start)."""
    idx = np.where(s <= 0.0, np.arange(len(s)), -1)
    last = np.maximum.accumulate(idx)
    return np.where(last >= 0, t_ms[np.maximum(last, 0)], carried).astype(np.int64)
