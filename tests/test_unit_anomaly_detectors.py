"""Each detector and the ensemble on synthetic series with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from pantau.anomaly import Ensemble, EnsembleParams
from pantau.anomaly.base import ewm, reflected_walk

STEP = 60_000  # one point a minute
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a Wednesday


def noise(n: int, seed: int = 7, level: float = 100.0, sd: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(level, sd, n)


def times(n: int, step: int = STEP) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * step


def run(x: np.ndarray, only: str | None = None, step: int = STEP, **kw) -> np.ndarray:
    return Ensemble(EnsembleParams(only=only, **kw)).score(times(len(x), step), x).score


def test_linear_recurrences_match_their_loops():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 2000)
    y, ref = 3.0, []
    for v in x:
        y = 0.95 * y + 0.05 * v
        ref.append(y)
    np.testing.assert_allclose(ewm(x, 0.05, 3.0), ref, rtol=1e-9, atol=1e-12)
    s, ref = 2.0, []
    for v in x - 0.5:
        s = max(0.0, s + v)
        ref.append(s)
    np.testing.assert_allclose(reflected_walk(x - 0.5, 2.0), ref, atol=1e-9)


@pytest.mark.parametrize("only", ["robust_z", "iqr", "ewma", None])
def test_spike_is_found_and_nothing_else(only):
    x = noise(1500)
    x[1000] += 40  # 20 standard deviations
    score = run(x, only)
    assert score[1000] >= 0.5
    assert np.delete(score, 1000)[100:].max() < 0.5


@pytest.mark.parametrize("only", ["cusum", "robust_z", None])
def test_level_shift(only):
    x = noise(1500)
    x[1000:] += 10  # 5 standard deviations, for good
    score = run(x, only)
    assert score[:1000][100:].max() < 0.5
    assert score[1000:1030].max() >= 0.5


@pytest.mark.parametrize("only", ["cusum", None])
def test_slow_trend(only):
    x = noise(2000)
    x[1000:] += 0.05 * np.arange(1000)  # 0.025 sd per point: no single point stands out
    score = run(x, only)
    assert score[100:1000].max() < 0.5
    hits = np.flatnonzero(score[1000:] >= 0.5)
    assert len(hits) and hits[0] < 500


@pytest.mark.parametrize("only", ["ewma", None])
def test_variance_change(only):
    x = noise(2000)
    x[1000:] = noise(1000, seed=8, sd=12.0)  # same level, six times the noise
    score = run(x, only)
    assert score[100:1000].max() < 0.5
    assert score[1000:1100].max() >= 0.5


def weekly_series(weeks: int = 5, seed: int = 3) -> tuple[np.ndarray, np.ndarray, int]:
    """Ten-minute points with a daily cycle, quiet weekends and a Monday-morning peak (08:00 to
    11:00, +60%). One true anomaly: Wednesday 03:00 of the last week at a busy-hour level."""
    step = 600_000
    monday = 1_699_833_600_000  # 2023-11-13 00:00 UTC, a Monday
    n = weeks * 7 * 144
    t = monday + np.arange(n, dtype=np.int64) * step
    hour = (t // 3_600_000) % 24
    dow = ((t // 86_400_000) + 3) % 7  # 0 Monday
    base = 100 + 40 * np.sin((hour - 6) / 24 * 2 * np.pi)
    base = np.where(dow >= 5, base * 0.5, base)
    base = np.where((dow == 0) & (hour >= 8) & (hour < 11), base * 1.6, base)
    x = base + np.random.default_rng(seed).normal(0, 3, n)
    anomaly = (weeks - 1) * 1008 + 2 * 144 + 3 * 6  # Wednesday 03:00, last week
    x[anomaly:anomaly + 3] += 60
    return t, x, anomaly


@pytest.mark.parametrize("only", ["seasonal", None])
def test_weekly_season_ordinary_monday_peak_does_not_fire(only):
    t, x, anomaly = weekly_series()
    scored = Ensemble(EnsembleParams(only=only)).score(t, x)
    score = scored.score
    assert score[anomaly:anomaly + 3].max() >= 0.5
    monday_peaks = [w * 1008 + 8 * 6 for w in (2, 3, 4)]  # after two weeks of learning
    for start in monday_peaks:
        assert score[start - 6: start + 24].max() < 0.5, f"Monday peak of week {start // 1008 + 1} fired"
    if only is None:  # the ensemble: nothing else fires once three weeks are learned
        after_learning = score[3 * 1008:].copy()
        after_learning[anomaly - 3 * 1008: anomaly - 3 * 1008 + 3] = 0
        assert after_learning.max() < 0.5
    i = anomaly + int(np.argmax(score[anomaly:anomaly + 3]))
    reason = scored.explain(i, "requests per second")
    assert "usual Wednesday 03:00 level" in reason, reason
    assert reason.startswith("requests per second ")


def test_reason_names_value_unit_and_deviation():
    x = noise(600, level=0.4, sd=0.01)  # seconds
    x[500] = 0.85
    ens = Ensemble(EnsembleParams(seasonal_gate=False))
    scored = ens.score(times(600), x)
    reason = scored.explain(500, "p99 latency", "s")
    assert reason.startswith("p99 latency 850 ms is ")
    assert "above" in reason


def test_scoring_in_blocks_equals_scoring_at_once():
    t, x, _ = weekly_series(weeks=3)
    whole = Ensemble().score(t, x)
    ens = Ensemble()
    parts = []
    rng = np.random.default_rng(5)
    pos = 0
    while pos < len(x):
        k = int(rng.integers(1, 200))
        parts.append(ens.score(t[pos:pos + k], x[pos:pos + k]).score)
        pos += k
    np.testing.assert_allclose(np.concatenate(parts), whole.score, atol=1e-6)


def test_state_round_trip_resumes_exactly():
    t, x, _ = weekly_series(weeks=3)
    half = len(x) // 2
    whole = Ensemble().score(t, x).score
    first = Ensemble()
    first.score(t[:half], x[:half])
    blob = first.to_bytes()
    assert len(blob) <= 4096
    resumed = Ensemble.from_bytes(blob)
    # the saved profiles are float32: resuming differs from never stopping by rounding only
    np.testing.assert_allclose(resumed.score(t[half:], x[half:]).score, whole[half:], atol=1e-4)
    assert resumed.to_bytes() != blob


def test_nan_points_score_zero_and_do_not_poison_the_baseline():
    x = noise(600)
    x[300:310] = np.nan
    x[500] += 40
    score = run(x)
    assert (score[300:310] == 0).all()
    assert score[500] >= 0.5


def test_unknown_detector_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown detector 'zscore'"):
        EnsembleParams(only="zscore")


def test_onset_score_is_damped_after_an_onset_raw_score_is_not():
    x = noise(1500)
    x[1000:1010] += 40
    scored = Ensemble(EnsembleParams(refractory=50)).score(times(1500), x)
    assert scored.score[1000] >= 0.5 and (scored.score[1001:1050] == 0).all()
    assert (scored.raw[1000:1005] >= 0.5).all()


@pytest.mark.parametrize("only", [None, "robust_z", "iqr", "ewma", "cusum", "seasonal"])
def test_point_by_point_equals_block(only):
    """The hub's streaming path (one point per call, scalar arithmetic) scores as the block path."""
    t, x, _ = weekly_series(weeks=3)
    params = EnsembleParams(only=only, refractory=30)
    block = Ensemble(params).score(t, x)
    ens = Ensemble(params)
    one = [ens.score(t[i:i + 1], x[i:i + 1]) for i in range(len(x))]
    np.testing.assert_allclose([s.score[0] for s in one], block.score, atol=1e-6)
    np.testing.assert_allclose([s.raw[0] for s in one], block.raw, atol=1e-6)
    np.testing.assert_allclose([s.upper[0] for s in one], block.upper, rtol=1e-9, equal_nan=True)
    assert one[-1].explain(0, "x")



def spiky_daily(days: int = 12, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Five-minute points around 10 with a burst to ~60 every six hours: a habit, not news."""
    n = days * 288
    t = T0 + np.arange(n, dtype=np.int64) * 300_000
    x = np.random.default_rng(seed).normal(10, 0.5, n)
    x[36::72] += 50 + np.random.default_rng(seed + 1).normal(0, 1, len(x[36::72]))
    return t, x


def test_recurring_bursts_become_a_habit_a_higher_one_is_news():
    t, x = spiky_daily()
    last = len(x) - 100
    x[last] = 90  # higher than any burst before: a record
    scored = Ensemble().score(t, x)
    onsets = scored.score[288 * 5: last - 36]  # after five days the bursts are the series' habit
    assert onsets.max() < 0.5
    assert scored.detectors["robust_z"].score[36 + 72 * 40] >= 0.5  # ... though far from its neighbours
    assert scored.record[last] == 1 and scored.score[last] >= 0.5
    assert "the highest value this series has shown" in scored.explain(last, "x")


def test_transition_counts_in_blocks_equal_point_by_point_across_halvings():
    from pantau.anomaly.context import ContextParams, TransitionNovelty

    rng = np.random.default_rng(1)
    z = rng.standard_t(2, size=3000) * 3
    valid = rng.random(3000) > 0.1
    params = ContextParams(decay_every=97)
    block = TransitionNovelty(params)
    got = np.concatenate([block.score(z[i:i + 333], valid[i:i + 333]) for i in range(0, 3000, 333)])
    one = TransitionNovelty(params)
    want = [one.score_one(float(v), bool(ok)) for v, ok in zip(z, valid, strict=True)]
    np.testing.assert_array_equal(got, want)
    assert block.counts == one.counts and block.counted == one.counted == int(valid.sum())


def test_state_saved_before_records_and_transitions_still_loads():
    import struct

    t, x, _ = weekly_series(weeks=1)
    ens = Ensemble()
    ens.score(t, x)
    blob = ens.to_bytes()
    head = struct.calcsize("<4sddqddqqq3dqqqH")
    extra = struct.calcsize("<ddbq") + 81
    old = b"PAE1" + blob[4:head] + blob[head + extra:]  # the layout before them
    resumed = Ensemble.from_bytes(old)
    assert resumed.hi == pytest.approx(float(np.float32(x[-256:].max())))
    assert resumed.window.values.tolist() == ens.window.values.tolist()
