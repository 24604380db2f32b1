"""What a detector says about each point of a block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class DetectorOutput:
    """Per point: the score in [0, 1], the signed deviation in the detector's own unit (MADs,
    IQRs, standard deviations, CUSUM units), and the baseline it compared with: the expected
    value and the band outside which the point would score >= 0.5 (NaN while learning)."""

    score: np.ndarray
    z: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def empty(cls, n: int) -> DetectorOutput:
        nan = np.full(n, np.nan)
        return cls(np.zeros(n), np.zeros(n), nan, nan.copy(), nan.copy())
