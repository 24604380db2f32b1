"""Scoring a log parser the way the loghub benchmark does (Zhu et al., ICSE 2019).

* Grouping accuracy: the share of lines whose predicted group holds exactly the lines of
  their true group. Merging two true events or splitting one loses every line of them.
* Parsing accuracy: the share of lines whose predicted template equals the true one after
  collapsing whitespace.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[object]) -> float:
    if len(truth) != len(predicted):
        raise ValueError("truth and prediction differ in length")
    if not truth:
        return 1.0
    true_groups: dict[str, set[int]] = defaultdict(set)
    predicted_groups: dict[object, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        true_groups[t].add(i)
        predicted_groups[p].add(i)
    correct = 0
    for lines in predicted_groups.values():
        if true_groups[truth[next(iter(lines))]] == lines:
            correct += len(lines)
    return correct / len(truth)


def parsing_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return 1.0
    ok = sum(" ".join(t.split()) == " ".join(p.split()) for t, p in zip(truth, predicted, strict=True))
    return ok / len(truth)


@dataclass
class Labelled:
    """One loghub-2k system: the messages and their ground truth."""

    system: str
    content: list[str]
    event_ids: list[str]
    templates: list[str]


def load_loghub(folder: Path, system: str, corrected: bool = True) -> Labelled:
    suffix = "_structured_corrected.csv" if corrected else "_structured.csv"
    with open(folder / system / f"{system}_2k.log{suffix}", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return Labelled(system, [r["Content"] for r in rows], [r["EventId"] for r in rows],
                    [r["EventTemplate"] for r in rows])


LOGHUB_SYSTEMS = ["HDFS", "Hadoop", "Spark", "BGL", "Linux", "HealthApp", "Apache", "Proxifier"]
