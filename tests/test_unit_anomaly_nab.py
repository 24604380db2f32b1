"""The NAB scorer on a tiny corpus in NAB's layout, against values worked out by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from pantau.anomaly.nab import load_corpus, scaled_sigmoid, score_corpus

T0 = datetime(2014, 1, 1)


def stamp(i: int, micro: bool = False) -> str:
    t = T0 + timedelta(minutes=5 * i)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f" if micro else "%Y-%m-%d %H:%M:%S")


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    for name in ("a.csv", "b.csv"):
        rows = "\n".join(f"{stamp(i)},{i % 7}" for i in range(2000))
        (tmp_path / "data" / "cat" / name).write_text("timestamp,value\n" + rows + "\n")
    windows = {"cat/a.csv": [[stamp(1000, True), stamp(1099, True)]], "cat/b.csv": []}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return load_corpus(tmp_path)


def scores_with(corpus, hits: dict[str, list[int]]) -> dict[str, np.ndarray]:
    out = {}
    for f in corpus:
        s = np.zeros(len(f.values))
        s[hits.get(f.name, [])] = 1.0
        out[f.name] = s
    return out


def standard(corpus, hits):
    return {r.profile: r for r in score_corpus(corpus, scores_with(corpus, hits))}["standard"]


def test_windows_and_probation_as_nab_defines_them(corpus):
    a = corpus[0]
    assert a.name == "cat/a.csv" and a.n_windows == 1 and a.probation == 300
    assert (a.window == 0).sum() == 100 and a.window[1000] == 0 and a.window[999] == -1
    assert a.weight[1000] == pytest.approx(scaled_sigmoid(-1.0))  # the window's first row: ~0.987
    assert a.weight[1099] == pytest.approx(scaled_sigmoid(-0.01))  # its last: ~0.025
    assert a.weight[500] == -1.0  # before the first window
    assert a.weight[1100] == pytest.approx(scaled_sigmoid(1 / 99))  # just after it: a small penalty


def test_null_scores_0_and_perfect_100(corpus):
    assert standard(corpus, {}).score == pytest.approx(0.0)
    assert standard(corpus, {"cat/a.csv": [1000]}).score == pytest.approx(100.0)


def test_late_detection_false_positives_and_probation(corpus):
    null, perfect = -1.0, float(scaled_sigmoid(-1.0))
    late = standard(corpus, {"cat/a.csv": [1090]})
    assert late.score == pytest.approx(100 * (float(scaled_sigmoid(-10 / 100)) - null) / (perfect - null))
    # a false positive before any window costs 0.11 on the standard profile, so the best threshold
    # keeps it only with the detection
    with_fp = standard(corpus, {"cat/a.csv": [1000], "cat/b.csv": [1500]})
    assert with_fp.score == pytest.approx(100 * (perfect - 0.11 - null) / (perfect - null))
    assert with_fp.fp == 1 and with_fp.tp == 1 and with_fp.fp_by_category == {"cat": 1}
    # inside the probation period nothing counts
    assert standard(corpus, {"cat/b.csv": [100]}).fp == 0
