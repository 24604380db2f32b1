"""Pieces every detector shares: mapping a deviation to a score in [0, 1], linear recurrences
evaluated a block at a time, and compact state encoding."""

from __future__ import annotations

import numpy as np


def squash(z: np.ndarray, z0: float, z_half: float) -> np.ndarray:
    """0 for |z| <= z0, 0.5 at z_half, towards 1 beyond: one curve for every detector so their
    scores mean the same thing ("how sure am I this point is unusual") and can be combined."""
    excess = np.maximum(np.abs(z) - z0, 0.0) / (z_half - z0)
    return 1.0 - np.exp2(-(excess * excess))


def squash_one(z: float, z0: float, z_half: float) -> float:
    """`squash` for one value (the streaming path)."""
    excess = max(abs(z) - z0, 0.0) / (z_half - z0)
    return 1.0 - 2.0 ** (-(excess * excess))


def ewm(x: np.ndarray, alpha: float, y0: float) -> np.ndarray:
    """y[t] = (1 - alpha) * y[t-1] + alpha * x[t] with y[-1] = y0, for a whole block at once.

    The recurrence is linear, so y[t] = p[t] * (y0 + alpha * sum(x[k] / p[k])) with
    p[t] = (1 - alpha)^(t + 1). 1/p grows geometrically, so the block is cut into pieces short
    enough that 1/p stays below 1e8 (precision loss < 1e-8 relative).
    """
    n = len(x)
    out = np.empty(n)
    if n == 0:
        return out
    decay = 1.0 - alpha
    piece = max(1, int(np.log(1e-8) / np.log(decay))) if decay > 0 else 1
    if decay <= 0:
        out[:] = x
        return out
    powers = decay ** np.arange(1, min(piece, n) + 1)
    start, y = 0, float(y0)
    while start < n:
        stop = min(n, start + piece)
        p = powers[: stop - start]
        out[start:stop] = p * (y + alpha * np.cumsum(x[start:stop] / p))
        y = float(out[stop - 1])
        start = stop
    return out


def reflected_walk(steps: np.ndarray, s0: float) -> np.ndarray:
    """S[t] = max(0, S[t-1] + steps[t]) with S[-1] = s0 >= 0 (a one-sided CUSUM), vectorised by
    Lindley's identity S[t] = C[t] - min(0, min(C[0..t])) where C is the running sum from s0."""
    c = s0 + np.cumsum(steps)
    return c - np.minimum(np.minimum.accumulate(c), 0.0)
