"""Transition novelty: has this series made this move before?

The value detectors ask how far a point is from the usual level; they fire again at every
recurring burst of a spiky series, at every ramp of a sawtooth. This member asks a sequence
question, in a compact way: each point becomes one of nine symbols (its robust z-score cut at
+-1, 3, 6 and 12 MADs), the pair (previous symbol, this symbol) is a transition, and a table
of 81 counters says how often the series has made it. A transition made `k` times before is
worth at most 1 / (1 + k) as an onset: the first jump from calm to 12 MADs is news, the fifth
identical one is the series' habit. Every `decay_every` points the counters are halved, so a
habit that stopped becomes news again after a while.

It is a small quantised transition ("surprise") model in the spirit of the sequence detectors
that lead NAB (HTM, CAD OSE, ARTime), at 81 bytes of state. The ensemble uses it to damp the
onset score only, like the refractory period: an anomaly that is still going on is not made
shorter by repeating its own transition.

Work per point is constant. A block is scored with a few vectorised passes: the count a point
sees is the table's count before the block plus how often its transition occurred earlier in
the block (a stable sort by transition), cut into pieces where the table is halved, so that a
block and the same points one by one give the same numbers.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

EDGES = (-12.0, -6.0, -3.0, -1.0, 1.0, 3.0, 6.0, 12.0)  # robust z: nine symbols, 4 is "usual"
SYMBOLS = len(EDGES) + 1
_EDGES = np.asarray(EDGES)
CALM = SYMBOLS // 2
CAP = 255  # counters are bytes


@dataclass(frozen=True, slots=True)
class ContextParams:
    power: float = 1.0  # an onset made k times before is worth at most (1 + k) ** -power
    decay_every: int = 4096  # counted points between halvings of every counter (0: never)


class TransitionNovelty:
    """The transition counters of one series and the symbol of its last point."""

    def __init__(self, params: ContextParams = ContextParams()) -> None:
        self.p = params
        # bytes: indexed as Python ints on the streaming path, viewed as uint8 for a block
        self.counts = bytearray(SYMBOLS * SYMBOLS)
        self.prev = CALM  # symbol of the last point
        self.counted = 0  # points counted (for the halvings)

    # state -----------------------------------------------------------------------------
    def state(self) -> tuple[bytes, int, int]:
        return bytes(self.counts), self.prev, self.counted

    def load(self, counts: bytes, prev: int, counted: int) -> None:
        self.counts = bytearray(counts[:SYMBOLS * SYMBOLS])
        self.prev, self.counted = int(prev), int(counted)

    @staticmethod
    def nbytes() -> int:
        return SYMBOLS * SYMBOLS

    # scoring ---------------------------------------------------------------------------
    def score(self, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Per point the most its onset score may be (1 for a transition never made), then
        count the block's transitions (only of points whose z-score is known)."""
        n = len(z)
        if n == 0:
            return np.zeros(0)
        sym = np.searchsorted(_EDGES, z, side="right")
        unknown = np.isnan(z)
        if unknown.any():
            sym[unknown] = CALM
        prev = np.concatenate([[self.prev], sym[:-1]])
        ctx = prev * SYMBOLS + sym
        seen = np.empty(n, dtype=np.int64)
        every = self.p.decay_every
        pos = 0
        if not every or self.counted % every + int(np.count_nonzero(valid)) < every:
            every = 0  # no halving inside this block: one piece
        while pos < n:
            stop = n
            if every:
                # the piece ends at the point whose count reaches the next multiple of `every`
                left = every - self.counted % every
                cum = np.cumsum(valid[pos:])
                hit = np.searchsorted(cum, left)
                if hit < n - pos:
                    stop = pos + hit + 1
            self._piece(ctx[pos:stop], valid[pos:stop], seen[pos:stop])
            counted = int(valid[pos:stop].sum())
            if every and self.counted % every + counted >= every:
                table = np.frombuffer(self.counts, dtype=np.uint8)
                table //= 2
            self.counted += counted
            pos = stop
        self.prev = int(sym[-1])
        return (1.0 + seen) ** -self.p.power

    def _piece(self, ctx: np.ndarray, valid: np.ndarray, seen: np.ndarray) -> None:
        """`seen` = count of each point's transition before it; the counts learn the piece."""
        order = np.argsort(ctx, kind="stable")
        c = ctx[order]
        v = valid[order].astype(np.int64)
        cum = np.cumsum(v) - v  # valid points before, in sorted order
        first = np.concatenate([[True], c[1:] != c[:-1]])
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))
        before = cum - cum[group_start]
        table = np.frombuffer(self.counts, dtype=np.uint8)  # a view: writing it writes the counts
        seen[order] = np.minimum(table[c].astype(np.int64) + before, CAP)
        added = np.bincount(ctx, weights=valid, minlength=len(table)).astype(np.int64)
        table[:] = np.minimum(table + added, CAP)

    def score_one(self, z: float, valid: bool) -> float:
        """`score` of one point."""
        sym = bisect_right(EDGES, z) if z == z else CALM
        ctx = self.prev * SYMBOLS + sym
        counts = self.counts
        seen = counts[ctx]
        if valid:
            if seen < CAP:
                counts[ctx] = seen + 1
            self.counted += 1
            if self.p.decay_every and self.counted % self.p.decay_every == 0:
                table = np.frombuffer(counts, dtype=np.uint8)
                table //= 2
        self.prev = sym
        return (1.0 + seen) ** -self.p.power
