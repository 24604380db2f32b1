"""`pantau logs patterns` over a loghub-2k file, scored like the loghub benchmark."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from pantau.cli import app
from pantau.logs.evaluation import grouping_accuracy, load_loghub, parsing_accuracy

from .datasets import dataset


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_patterns_csv_column(tmp_path) -> None:
    folder = dataset("loghub2k")
    out = tmp_path / "hdfs.csv"
    source = folder / "HDFS" / "HDFS_2k.log_structured_corrected.csv"
    result = CliRunner().invoke(app, ["logs", "patterns", "--input", str(source), "--format", "csv",
                                      "--column", "Content", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = _read(out)
    truth = load_loghub(folder, "HDFS")
    assert [r["LineId"] for r in rows] == [str(i) for i in range(1, 2001)]
    assert grouping_accuracy(truth.event_ids, [r["ClusterId"] for r in rows]) == 1.0
    templates = {r["ClusterId"]: r["EventTemplate"] for r in rows}
    assert len(templates) == 14
    assert templates[rows[0]["ClusterId"]] == "PacketResponder <*> for block <*> terminating"
    assert parsing_accuracy(truth.templates, [r["EventTemplate"] for r in rows]) >= 0.85  # measured 0.853


def test_patterns_raw_lines_with_headers(tmp_path) -> None:
    """Raw lines keep their headers (date, time, pid, level, component): masking absorbs the
    variable parts of HDFS's header, so grouping is still exact."""
    folder = dataset("loghub2k")
    out = tmp_path / "hdfs.csv"
    result = CliRunner().invoke(app, ["logs", "patterns", "-i", str(folder / "HDFS" / "HDFS_2k.log"),
                                      "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = _read(out)
    assert len(rows) == 2000
    truth = load_loghub(folder, "HDFS")
    assert grouping_accuracy(truth.event_ids, [r["ClusterId"] for r in rows]) == 1.0


def test_patterns_names_a_missing_column(tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("LineId,Message\n1,hello\n")
    result = CliRunner().invoke(app, ["logs", "patterns", "-i", str(source), "--format", "csv", "-o",
                                      str(tmp_path / "o.csv"), "-q"])
    assert result.exit_code == 2
    assert "column 'Content' not in the CSV header (LineId, Message)" in result.output
