"""`pantau logs ...`: log tools that work on files, without a running hub."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

logs_app = typer.Typer(no_args_is_help=True, help="Log tools: pattern mining over files.")


class InputFormat(StrEnum):
    raw = "raw"
    csv = "csv"


@logs_app.command("patterns")
def patterns(
    input: Annotated[Path, typer.Option("--input", "-i", exists=True, dir_okay=False, help="A log file")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write: LineId,ClusterId,EventTemplate")],
    format: Annotated[InputFormat, typer.Option("--format", help="raw: one record a line; csv: a column")] = (
        InputFormat.raw),
    column: Annotated[str, typer.Option(help="The CSV column holding the message")] = "Content",
    service: Annotated[str, typer.Option(help="Service name the lines are mined under")] = "file",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary")] = False,
) -> None:
    """Mine log templates from a file with the hub's miner and write each line's template.

    Templates are written as they stand at the end (a template generalises as lines arrive),
    which is also how the loghub benchmark scores parsers.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from pantau.logs.patterns import PatternMiner

    miner = PatternMiner()
    ids: list[str] = []
    console = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    size = input.stat().st_size
    with open(input, "rb") as f, Progress(
        TextColumn("[bold]mining[/bold] {task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=console, disable=quiet,
    ) as progress:
        task = progress.add_task(input.name, total=size)
        lines = _read_lines(f, lambda n: progress.advance(task, n))
        try:
            messages = lines if format is InputFormat.raw else _csv_column(lines, column)
            observe = miner.observe
            for message in messages:
                ids.append(observe(service, message, 0))
        except ValueError as exc:
            typer.secho(f"pantau: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started
    templates = {p.id: p.template for p in miner.patterns(service)}
    with open(output, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["LineId", "ClusterId", "EventTemplate"])
        for line_id, tid in enumerate(ids, 1):
            writer.writerow([line_id, tid, templates[tid]])
    if not quiet:
        rate = len(ids) / elapsed if elapsed > 0 else float("inf")
        console.print(f"{len(ids):,} lines, {len(templates):,} templates, {rate:,.0f} lines/s -> {output}")


def _read_lines(f: BinaryIO, advance) -> Iterator[str]:
    """Lines of a file without their line ends, reporting bytes read as it goes."""
    pending = 0
    for raw in f:
        pending += len(raw)
        if pending >= 1 << 20:
            advance(pending)
            pending = 0
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
    advance(pending)


def _csv_column(lines: Iterator[str], column: str) -> Iterator[str]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    if column not in header:
        raise ValueError(f"column {column!r} not in the CSV header ({', '.join(header)})")
    index = header.index(column)
    for row in reader:
        yield row[index] if index < len(row) else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(logs_app())
