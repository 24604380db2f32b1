"""Seasonal baseline: what this series usually does at this hour of the week (and, until it
has seen the same hour twice, at this hour of the day).

The profiles learn by themselves: each completed hour folds its mean and spread into the
hour-of-week and hour-of-day slots with exponential forgetting, so a weekly pattern that
changes is followed within a few weeks. Profiles change only when an hour completes, so a
block of points is scored hour by hour with one lookup per hour. Hours are UTC; a slot needs
`min_weeks` observations (hour-of-week) or `min_days` (hour-of-day) before it is trusted.

An ordinary Monday-morning peak is far from the weekend's values a trailing window holds, but
close to the usual Monday morning: the ensemble lets this detector overrule the others where
its profile is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.anomaly.base import squash, squash_one
from pantau.anomaly.output import DetectorOutput

HOUR_MS = 3_600_000
WEEK_HOURS = 168
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def hour_of_week(hour_index: np.ndarray | int) -> np.ndarray | int:
    """Hours since Monday 00:00 UTC (the epoch, 1970-01-01, was a Thursday)."""
    return (hour_index + 72) % WEEK_HOURS


def slot_name(t_ms: int, weekly: bool) -> str:
    how = hour_of_week(t_ms // HOUR_MS)
    return f"{DAYS[how // 24]} {how % 24:02d}:00" if weekly else f"{how % 24:02d}:00"


@dataclass(frozen=True, slots=True)
class SeasonalParams:
    week_beta: float = 0.5  # weight of the newest week in an hour-of-week slot
    day_beta: float = 0.2  # weight of the newest day in an hour-of-day slot
    min_weeks: int = 2
    min_days: int = 2
    z_min: float = 2.5
    z_half: float = 5.0
    rel_floor: float = 0.01
    abs_floor: float = 1e-9
    pool: float = 0.0  # a slot's variance is at least this share of its neighbourhood's


class Seasonal:
    name = "seasonal"

    def __init__(self, params: SeasonalParams = SeasonalParams()) -> None:
        self.p = params
        # [mean, variance, observations] per slot, as Python floats: a fold is a handful of
        # scalar operations, which lists do faster than NumPy. Saved as float32.
        self.week = [[0.0] * WEEK_HOURS for _ in range(3)]
        self.day = [[0.0] * 24 for _ in range(3)]
        self.hour = -1  # the hour being accumulated (index since the epoch)
        self.acc = [0.0, 0.0, 0.0]  # its count, sum, sum of squares

    def state(self) -> tuple[np.ndarray, np.ndarray, int, list[float]]:
        return (np.asarray(self.week, dtype=np.float32), np.asarray(self.day, dtype=np.float32),
                self.hour, list(self.acc))

    def load(self, week: np.ndarray, day: np.ndarray, hour: int, acc: list[float]) -> None:
        self.week = np.asarray(week, dtype=np.float64).reshape(3, WEEK_HOURS).tolist()
        self.day = np.asarray(day, dtype=np.float64).reshape(3, 24).tolist()
        self.hour, self.acc = int(hour), [float(a) for a in acc]

    def _fold(self) -> None:
        """Fold the completed hour into its hour-of-week and hour-of-day slots."""
        count, total, squares = self.acc
        if count <= 0:
            return
        mean = total / count
        var = max(squares / count - mean * mean, 0.0)
        how = (self.hour + 72) % WEEK_HOURS
        for (pm, pv, pn), slot, beta in ((self.week, how, self.p.week_beta), (self.day, how % 24, self.p.day_beta)):
            m, k = pm[slot], pn[slot]
            b = max(beta, 1.0 / (k + 1.0))
            d = mean - m
            pm[slot] = m + b * d
            pv[slot] = (1 - b) * (pv[slot] + b * d * d) + b * var
            pn[slot] = min(k + 1.0, 255.0)
        self.acc = [0.0, 0.0, 0.0]

    def score(self, t_ms: np.ndarray, x: np.ndarray) -> tuple[DetectorOutput, np.ndarray]:
        """Scores, and per point whether the weekly (1), daily (2) or no (0) profile was used."""
        n = len(x)
        if n == 0:
            return DetectorOutput.empty(0), np.zeros(0, dtype=np.int8)
        hours = t_ms // HOUR_MS
        starts = np.flatnonzero(np.concatenate([[True], hours[1:] != hours[:-1]]))
        ends = np.append(starts[1:], n)
        lengths = ends - starts
        xs = np.asarray(x, dtype=np.float64)
        sums = np.add.reduceat(xs, starts).tolist()
        squares = np.add.reduceat(xs * xs, starts).tolist()
        counts = lengths.astype(np.float64).tolist()
        run_hours = hours[starts].tolist()
        exp_run, sd_run, kind_run = [], [], []
        p = self.p
        wm, wv, wn = self.week
        dm, dv, dn = self.day
        nan = float("nan")
        for r, h in enumerate(run_hours):
            if h != self.hour:
                self._fold()
                self.hour = h
            how = (h + 72) % WEEK_HOURS
            hod = how % 24
            if wn[how] >= p.min_weeks:
                exp_run.append(wm[how])
                sd_run.append(_pooled_sd(wv, wn, how, WEEK_HOURS, p.pool))
                kind_run.append(1)
            elif dn[hod] >= p.min_days:
                exp_run.append(dm[hod])
                sd_run.append(_pooled_sd(dv, dn, hod, 24, p.pool))
                kind_run.append(2)
            else:
                exp_run.append(nan)
                sd_run.append(nan)
                kind_run.append(0)
            acc = self.acc
            acc[0] += counts[r]
            acc[1] += sums[r]
            acc[2] += squares[r]
        expected = np.repeat(np.asarray(exp_run), lengths)
        sd = np.repeat(np.asarray(sd_run), lengths)
        kind = np.repeat(np.asarray(kind_run, dtype=np.int8), lengths)
        sd = np.fmax(sd, np.fmax(p.rel_floor * np.abs(expected), p.abs_floor))
        z = np.where(kind > 0, (xs - expected) / sd, 0.0)
        half = p.z_half * sd
        return DetectorOutput(squash(z, p.z_min, p.z_half), z, expected, expected - half, expected + half), kind

    def score_one(self, t_ms: int, x: float) -> tuple[tuple[float, ...], int]:
        """((score, z, expected, lower, upper), kind) of one point."""
        h = t_ms // HOUR_MS
        if h != self.hour:
            self._fold()
            self.hour = h
        p = self.p
        how = (h + 72) % WEEK_HOURS
        hod = how % 24
        wm, wv, wn = self.week
        dm, dv, dn = self.day
        if wn[how] >= p.min_weeks:
            expected, sd, kind = wm[how], _pooled_sd(wv, wn, how, WEEK_HOURS, p.pool), 1
        elif dn[hod] >= p.min_days:
            expected, sd, kind = dm[hod], _pooled_sd(dv, dn, hod, 24, p.pool), 2
        else:
            kind = 0
        acc = self.acc
        acc[0] += 1.0
        acc[1] += x
        acc[2] += x * x
        if not kind:
            nan = float("nan")
            return (0.0, 0.0, nan, nan, nan), 0
        sd = max(sd, max(p.rel_floor * abs(expected), p.abs_floor))
        z = (x - expected) / sd
        half = p.z_half * sd
        return (squash_one(z, p.z_min, p.z_half), z, expected, expected - half, expected + half), kind


def _pooled_sd(var: list[float], obs: list[float], slot: int, slots: int, pool: float) -> float:
    """The slot's spread, at least half the average of it and its neighbours': two or three
    weeks of one hour are too few to estimate a variance alone, and neighbouring hours are alike."""
    own = var[slot]
    lo, hi = (slot - 1) % slots, (slot + 1) % slots
    total, k = own, 1
    if obs[lo] > 0:
        total, k = total + var[lo], k + 1
    if obs[hi] > 0:
        total, k = total + var[hi], k + 1
    return max(own, pool * total / k) ** 0.5
