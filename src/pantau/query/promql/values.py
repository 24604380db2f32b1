"""Values of PromQL evaluation, held for all evaluation steps at once.

A range query evaluates its expression at every step; instead of looping over steps as
Prometheus does, each value here holds the whole step grid, so the work per step is NumPy
work per series. An instant query is a grid of one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pantau.model import METRIC_NAME, Labels


class PromQLError(ValueError):
    """A query that cannot be parsed or is invalid (Prometheus `bad_data`, HTTP 400)."""

    error_type = "bad_data"


class Unsupported(PromQLError):
    """A construct pantau does not evaluate; never answered with a guess."""


class ExecutionError(PromQLError):
    """A query that is valid but fails while running (Prometheus `execution`, HTTP 422)."""

    error_type = "execution"


class QueryTimeout(PromQLError):
    error_type = "timeout"


class TooManySamples(ExecutionError):
    pass


@dataclass
class Vector:
    """An instant vector at every step: values[i, t] is series i at step t where present[i, t]."""

    labels: list[Labels]
    values: np.ndarray  # (series, steps) float64
    present: np.ndarray  # (series, steps) bool
    # Timestamps (ms) of the samples, for timestamp(); None when values are computed.
    stamps: np.ndarray | None = None

    @classmethod
    def empty(cls, steps: int) -> Vector:
        return cls([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, rows: list[int] | np.ndarray) -> Vector:
        rows = np.asarray(rows, dtype=np.int64)
        return Vector([self.labels[i] for i in rows.tolist()], self.values[rows], self.present[rows],
                      None if self.stamps is None else self.stamps[rows])

    def compact(self) -> Vector:
        """Drop series absent at every step."""
        keep = np.flatnonzero(self.present.any(axis=1))
        return self if len(keep) == len(self.labels) else self.select(keep)


@dataclass
class Scalar:
    values: np.ndarray  # (steps,)


@dataclass
class String:
    value: str


@dataclass
class RangeSeries:
    labels: Labels
    timestamps: np.ndarray  # int64 ms, ascending
    values: np.ndarray  # float64


@dataclass
class Matrix:
    """A range vector: the raw samples a range selector or subquery returns, with the window
    each step looks at: [eval_times - range, eval_times], both ends included (Prometheus 2.x)."""

    series: list[RangeSeries]
    eval_times: np.ndarray  # (steps,) int64 ms: the window end for each step
    range_ms: int

    def windows(self, s: RangeSeries) -> tuple[np.ndarray, np.ndarray]:
        """Index bounds [lo, hi) of each step's window in a series' samples."""
        lo = np.searchsorted(s.timestamps, self.eval_times - self.range_ms, side="left")
        hi = np.searchsorted(s.timestamps, self.eval_times, side="right")
        return lo, hi


def drop_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != METRIC_NAME)


def label_value(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def with_label(labels: Labels, name: str, value: str) -> Labels:
    out = [p for p in labels if p[0] != name]
    if value != "":
        out.append((name, value))
    return tuple(sorted(out))


def check_duplicates(vec: Vector, what: str = "vector cannot contain metrics with the same labelset") -> None:
    """Prometheus refuses a result where two series share a label set at the same step."""
    seen: dict[Labels, int] = {}
    for i, labels in enumerate(vec.labels):
        j = seen.setdefault(labels, i)
        if j != i and (vec.present[i] & vec.present[j]).any():
            raise ExecutionError(what)


def merge_same_labels(vec: Vector) -> Vector:
    """Series that share a label set but never overlap in time become one series (as
    Prometheus's range evaluation does); overlapping ones are an error."""
    if len(set(vec.labels)) == len(vec.labels):  # the usual case, e.g. a selector's series
        return vec
    check_duplicates(vec)
    index: dict[Labels, int] = {}
    rows: list[int] = []
    for i, labels in enumerate(vec.labels):
        if labels in index:
            continue
        index[labels] = len(rows)
        rows.append(i)
    if len(rows) == len(vec.labels):
        return vec
    values = vec.values[rows].copy()
    present = vec.present[rows].copy()
    for i, labels in enumerate(vec.labels):
        r = index[labels]
        if rows[r] != i:
            values[r] = np.where(vec.present[i], vec.values[i], values[r])
            present[r] |= vec.present[i]
    return Vector([vec.labels[i] for i in rows], values, present)
