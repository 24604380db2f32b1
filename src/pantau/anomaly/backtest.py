"""`pantau anomaly score`: run the hub's detectors over a CSV, as NAB's results files expect.

Reads `timestamp,value` (NAB's `YYYY-MM-DD HH:MM:SS`, RFC 3339, or unix seconds or
milliseconds) and writes `timestamp,value,anomaly_score`, one row per input row in input order
(NAB scores by row position, so duplicates and steps back are kept as they are). The
detectors are built from the `anomaly.detectors` section of the same pantau.yaml the hub
reads, so a backtest scores exactly what the hub would.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from pantau.anomaly.ensemble import DETECTORS, Ensemble, EnsembleParams

CHUNK = 4096  # rows scored per step (any size gives the same scores; this one moves the bar)

app = typer.Typer(no_args_is_help=True, help="Anomaly detection: backtest the hub's detectors.")


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch; times without a zone are UTC."""
    s = text.strip()
    try:
        num = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(num):
            raise ValueError(f"invalid timestamp {text!r}")
        return int(num if num > 1e11 else num * 1000)
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def read_csv(path: Path) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """The rows as written (to copy them to the output unchanged), timestamps (ms), values."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
            raise ValueError(f"{path}: the first line must be the header `timestamp,value`")
        rows, t, v = [], [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                t.append(parse_timestamp(row[0]))
                v.append(float(row[1]) if row[1].strip() else math.nan)
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            rows.append(row[:2])
    return rows, np.asarray(t, dtype=np.int64), np.asarray(v, dtype=np.float64)


def score_series(t_ms: np.ndarray, values: np.ndarray, params: EnsembleParams, progress=None,
                 raw: bool = False) -> np.ndarray:
    """Scores of one series, scored CHUNK rows at a time (the hub scores one point at a time;
    both give the same result)."""
    ens = Ensemble(params)
    out = np.empty(len(values))
    for start in range(0, len(values), CHUNK):
        stop = min(len(values), start + CHUNK)
        scored = ens.score(t_ms[start:stop], values[start:stop])
        out[start:stop] = scored.raw if raw else scored.score
        if progress is not None:
            progress(stop - start)
    return out


def load_params(config: Path | None, detector: str | None) -> EnsembleParams:
    if config is None:
        from pantau.anomaly.config import DetectorsConfig

        return DetectorsConfig().params(detector)
    from pantau.config import load_config

    return load_config(config).anomaly.detectors.params(detector)


@app.command("score")
def score_command(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV with timestamp,value")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write (timestamp,value,anomaly_score)")],
    detector: Annotated[str | None, typer.Option(help=f"one detector alone: {', '.join(DETECTORS)}")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="pantau.yaml (its anomaly.detectors)")] = None,
    raw: Annotated[bool, typer.Option(help="write the raw score (no cap, no damping after an onset)")] = False,
) -> None:
    """Score a series with the hub's detectors (NAB's results layout)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pantau.config import ConfigError

    try:
        params = load_params(config, detector)
    except (ConfigError, ValueError) as exc:
        typer.secho(f"pantau: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    try:
        rows, t_ms, values = read_csv(input)
    except (OSError, ValueError) as exc:
        typer.secho(f"pantau: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    with Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task("score", total=len(values))
        scores = score_series(t_ms, values, params, lambda k: bar.advance(task, k), raw=raw)
    with open(output, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score"])
        for row, s in zip(rows, scores, strict=True):
            w.writerow([row[0], row[1], f"{s:.6f}"])
    flagged = int((scores >= 0.5).sum())
    typer.echo(f"{len(values)} rows scored, {flagged} at or above 0.5; written to {output}")
