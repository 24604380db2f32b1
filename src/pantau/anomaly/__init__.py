"""Anomaly detection: streaming detectors with self-learning baselines, their ensemble, the
hub engine that runs them over chosen series, business rules and backtesting.

Every detector works on blocks of points of one series (one point in the hub's streaming mode,
a whole file when backtesting) and keeps everything it has learned in a small state that
serialises to bytes, so scoring a series in one block or in many gives the same scores and the
hub can persist baselines across restarts.
"""

from pantau.anomaly.ensemble import Ensemble, EnsembleParams, Scored

__all__ = ["Ensemble", "EnsembleParams", "Scored"]
