"""`pantau anomaly score`: NAB's results layout, one row per input row, the hub's detectors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from pantau.anomaly import Ensemble
from pantau.anomaly.backtest import parse_timestamp, read_csv
from pantau.anomaly.config import DetectorsConfig
from pantau.cli import app


def write_series(path: Path, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(4)
    x = rng.normal(50, 2, n)
    x[min(2500, n - 1)] = 120
    stamps = [f"2014-03-{1 + (i * 5) // 1440:02d} {(i * 5 // 60) % 24:02d}:{(i * 5) % 60:02d}:00" for i in range(n)]
    stamps[min(1000, n - 1)] = stamps[min(999, n - 2)]  # a repeated timestamp, as in some NAB files
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for s, v in zip(stamps, x, strict=True):
            w.writerow([s, f"{v:.3f}"])
    return x


def test_scores_every_row_in_order_with_the_hub_detectors(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_series(src)
    result = CliRunner().invoke(app, ["anomaly", "score", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    inp = list(csv.reader(src.open()))
    assert [r[:2] for r in rows[1:]] == inp[1:]
    scores = np.array([float(r[2]) for r in rows[1:]])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[2500] >= 0.5
    # the same as the hub's ensemble fed the same points
    _, t, v = read_csv(src)
    expected = Ensemble(DetectorsConfig().params()).score(t, v).score
    np.testing.assert_allclose(scores, expected, atol=2e-6)


def test_one_detector_and_a_config_file(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_series(src)
    cfg = tmp_path / "pantau.yaml"
    cfg.write_text("anomaly:\n  detectors:\n    refractory: 0\n    robust_z: {z_min: 4, z_half: 9}\n")
    result = CliRunner().invoke(app, ["anomaly", "score", "-i", str(src), "-o", str(out), "--detector", "robust_z",
                                      "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    scores = np.array([float(r[2]) for r in list(csv.reader(out.open()))[1:]])
    assert scores[2500] >= 0.5


def test_bad_detector_and_bad_config_are_named(tmp_path):
    src = tmp_path / "in.csv"
    write_series(src, 100)
    result = CliRunner().invoke(app, ["anomaly", "score", "-i", str(src), "-o", str(tmp_path / "o.csv"),
                                      "--detector", "zscore"])
    assert result.exit_code == 2 and "unknown detector 'zscore'" in result.output
    cfg = tmp_path / "pantau.yaml"
    cfg.write_text("anomaly:\n  detectors:\n    windw: 100\n")
    result = CliRunner().invoke(app, ["anomaly", "score", "-i", str(src), "-o", str(tmp_path / "o.csv"),
                                      "--config", str(cfg)])
    assert result.exit_code == 2 and "anomaly.detectors.windw" in result.output


def test_timestamps_in_every_usual_spelling():
    assert parse_timestamp("2014-07-01 00:30:00") == 1404174600000
    assert parse_timestamp("2014-07-01T00:30:00Z") == 1404174600000
    assert parse_timestamp("1404174600") == 1404174600000
    assert parse_timestamp("1404174600000") == 1404174600000


def test_runs_as_a_command(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_series(src, 500)
    proc = subprocess.run([sys.executable, "-m", "pantau", "anomaly", "score", "--input", str(src),
                           "--output", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "500 rows scored" in proc.stdout


def test_config_defaults_are_the_detector_defaults():
    """pantau.yaml without an anomaly section runs the ensemble exactly as documented."""
    from pantau.anomaly import EnsembleParams

    assert DetectorsConfig().params() == EnsembleParams()
