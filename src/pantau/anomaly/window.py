"""The trailing window shared by the robust z-score and IQR detectors: the last `size` values of
a series and, for each new point, the order statistics of the window *before* it.

Sorting each point's window once gives the median and the quartiles together; the MAD needs
one more partition. Over a block the windows are a strided view of (history + block), so a
block of n points costs two vectorised passes over an (n, size) array and no Python loop,
except while the window is still filling (the first `size` points of a series' life).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_ROWS = 2048


@dataclass(slots=True)
class WindowStats:
    """Per point of a block: statistics of the window of values before it (NaN while fewer
    than `min_points` values have been seen)."""

    median: np.ndarray
    mad: np.ndarray  # median absolute deviation (unscaled)
    q1: np.ndarray
    q3: np.ndarray
    count: np.ndarray  # how many values the window held


class TrailingWindow:
    """A ring of the last `size` values (float32: the window is a baseline, not a record)."""

    def __init__(self, size: int = 128, min_points: int = 24) -> None:
        if size < 8:
            raise ValueError("window size must be at least 8")
        self.size = size
        self.min_points = min(min_points, size)
        self.values = np.zeros(0, dtype=np.float32)  # oldest first, at most `size`

    # state -----------------------------------------------------------------------------
    def state(self) -> np.ndarray:
        return self.values.copy()

    def load(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float32)[-self.size:].copy()

    # scoring ---------------------------------------------------------------------------
    def stats(self, x: np.ndarray) -> WindowStats:
        """Statistics before each point of `x`, then append `x` to the window."""
        n, w = len(x), self.size
        hist = self.values.astype(np.float64)
        # values enter the window as float32, within a block too, so that scoring a series in
        # one block or point by point gives exactly the same statistics
        ext = np.concatenate([hist, np.asarray(x, dtype=np.float32).astype(np.float64)])
        out = WindowStats(*(np.full(n, np.nan) for _ in range(4)), np.zeros(n, dtype=np.int64))
        h = len(hist)
        # points whose window is full: rows of a strided view
        first_full = max(0, w - h)
        if first_full < n:
            windows = sliding_window_view(ext[h + first_full - w: h + n - 1], w)
            # a few thousand rows at a time: the sorted copies stay in cache-sized memory
            for lo in range(0, n - first_full, _ROWS):
                hi = min(n - first_full, lo + _ROWS)
                self._fill(out, slice(first_full + lo, first_full + hi), windows[lo:hi])
        # points whose window is still filling (the first `size` points of a series' life)
        filling = np.arange(min(first_full, n))
        filling = filling[h + filling >= self.min_points]
        if len(filling):
            self._fill_growing(out, filling, h + filling, ext[:w])
        out.count[:] = np.minimum(np.arange(h, h + n), w)
        self.values = ext[-w:].astype(np.float32)
        return out

    def stats_one(self, x: float) -> tuple[float, float, float, float, int]:
        """`stats` for a single point, without building block arrays (the hub's streaming path):
        (median, mad, q1, q3, count), NaN while learning."""
        h = len(self.values)
        if h >= self.min_points:
            # the same arithmetic as _fill on one row, on Python floats
            srt = np.sort(self.values).astype(np.float64)
            mid = h // 2
            med = float(srt[mid]) if h % 2 else 0.5 * (float(srt[mid - 1]) + float(srt[mid]))
            dev = srt - med
            np.abs(dev, out=dev)
            dev.sort()
            mad = float(dev[mid]) if h % 2 else 0.5 * (float(dev[mid - 1]) + float(dev[mid]))
            pos1, pos3 = 0.25 * (h - 1), 0.75 * (h - 1)
            lo1, lo3 = int(pos1), int(pos3)
            f1, f3 = pos1 - lo1, pos3 - lo3
            hi1, hi3 = min(lo1 + 1, h - 1), min(lo3 + 1, h - 1)
            q1 = float(srt[lo1]) * (1 - f1) + float(srt[hi1]) * f1
            q3 = float(srt[lo3]) * (1 - f3) + float(srt[hi3]) * f3
            res = (med, mad, q1, q3, h)
        else:
            nan = float("nan")
            res = (nan, nan, nan, nan, h)
        self.push(x)
        return res

    def push(self, x: float) -> None:
        """Append one value (after its statistics were taken)."""
        hist = self.values
        if len(hist) < self.size:
            self.values = np.append(hist, np.float32(x))
        else:
            hist[:-1] = hist[1:]
            hist[-1] = x

    @staticmethod
    def _fill_growing(out: WindowStats, rows: np.ndarray, counts: np.ndarray, head: np.ndarray) -> None:
        """`_fill` for windows that all start at the series' first value and hold `counts`
        values: NaN-padded to one width (sorting puts NaN last), indexed per row."""
        width = len(head)
        padded = np.concatenate([head, np.full(width - len(head), np.nan)]) if len(head) < width else head
        present = np.arange(width)[None, :] < counts[:, None]
        windows = np.where(present, padded[None, :], np.nan)
        srt = np.sort(windows, axis=1)

        def at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, idx[:, None], axis=1)[:, 0]

        mid = counts // 2
        odd = counts % 2 == 1
        med = np.where(odd, at(srt, mid), 0.5 * (at(srt, np.maximum(mid - 1, 0)) + at(srt, mid)))
        dev = np.sort(np.abs(windows - med[:, None]), axis=1)
        mad = np.where(odd, at(dev, mid), 0.5 * (at(dev, np.maximum(mid - 1, 0)) + at(dev, mid)))
        q = []
        for frac in (0.25, 0.75):
            pos = frac * (counts - 1)
            lo = pos.astype(np.int64)
            f = pos - lo
            hi = np.minimum(lo + 1, counts - 1)
            q.append(at(srt, lo) * (1 - f) + at(srt, hi) * f)
        out.median[rows] = med
        out.mad[rows] = mad
        out.q1[rows] = q[0]
        out.q3[rows] = q[1]

    @staticmethod
    def _fill(out: WindowStats, where: slice, windows: np.ndarray) -> None:
        m = windows.shape[1]
        srt = np.sort(windows, axis=1)
        mid = m // 2
        med = srt[:, mid] if m % 2 else 0.5 * (srt[:, mid - 1] + srt[:, mid])
        # np.sort is vectorised (SIMD) where np.partition is not: sorting is the faster median;
        # deviations from the sorted copy (contiguous), in place
        dev = srt - med[:, None]
        np.abs(dev, out=dev)
        dev.sort(axis=1)
        mad = dev[:, mid] if m % 2 else 0.5 * (dev[:, mid - 1] + dev[:, mid])
        pos1, pos3 = 0.25 * (m - 1), 0.75 * (m - 1)
        lo1, lo3 = int(pos1), int(pos3)
        f1, f3 = pos1 - lo1, pos3 - lo3
        hi1, hi3 = min(lo1 + 1, m - 1), min(lo3 + 1, m - 1)
        out.median[where] = med
        out.mad[where] = mad
        out.q1[where] = srt[:, lo1] * (1 - f1) + srt[:, hi1] * f1
        out.q3[where] = srt[:, lo3] * (1 - f3) + srt[:, hi3] * f3

