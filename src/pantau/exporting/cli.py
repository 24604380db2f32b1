"""`pantau export logs`: a search result from a running hub, streamed to a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from pantau.exporting.formats import EXTENSIONS, FORMATS

export_app = typer.Typer(no_args_is_help=True, help="Export search results as JSON Lines, CSV or Parquet.")


@export_app.command("logs")
def export_logs(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write ('-': standard output)")],
    query: Annotated[str, typer.Option("--query", "-q", help='Search, e.g. service:signer "timeout"')] = "",
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, csv or parquet")] = "",
    start: Annotated[str | None, typer.Option(help="RFC 3339, unix seconds or nanoseconds")] = None,
    end: Annotated[str | None, typer.Option(help="RFC 3339, unix seconds or nanoseconds")] = None,
    service: Annotated[list[str] | None, typer.Option(help="Only this service (repeatable)")] = None,
    min_severity: Annotated[str | None, typer.Option(help="At least this severity (warn, error, ...)")] = None,
    max_records: Annotated[int | None, typer.Option(help="Stop after this many records")] = None,
    hub: Annotated[str, typer.Option(help="The hub's API address")] = "http://127.0.0.1:3000",
) -> None:
    """Stream every log record a search matches into a file, oldest first."""
    if not fmt:
        fmt = next((f for f, ext in EXTENSIONS.items() if output.name.endswith(ext)), "jsonl")
    if fmt not in FORMATS:
        _fail(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    params: dict[str, object] = {"q": query, "format": fmt, "direction": "forward"}
    for name, value in (("start", start), ("end", end), ("min_severity", min_severity),
                        ("max_records", max_records)):
        if value is not None:
            params[name] = value
    if service:
        params["service"] = service
    from rich.progress import (  # only this command draws progress: keep `pantau serve` light
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    to_stdout = str(output) == "-"
    tmp = output.with_name(output.name + ".partial")
    columns = [SpinnerColumn(), TextColumn("exporting logs"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeElapsedColumn()]
    try:
        with httpx.stream("GET", f"{hub.rstrip('/')}/api/pantau/logs/export", params=params,
                          timeout=httpx.Timeout(60.0, read=300.0)) as resp:
            if resp.status_code != 200:
                resp.read()
                try:
                    message = resp.json().get("error", resp.text)
                except ValueError:
                    message = resp.text
                _fail(f"the hub refused the export ({resp.status_code}): {message}")
            written = 0
            with Progress(*columns, console=None, disable=to_stdout, transient=False) as progress:
                task = progress.add_task("export", total=None)
                sink = sys.stdout.buffer if to_stdout else tmp.open("wb")
                try:
                    for chunk in resp.iter_bytes():
                        sink.write(chunk)
                        written += len(chunk)
                        progress.update(task, completed=written)
                finally:
                    if not to_stdout:
                        sink.close()
    except httpx.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        _fail(f"cannot export from {hub}: {exc}")
    if not to_stdout:
        tmp.replace(output)
        typer.echo(f"wrote {written:,} bytes of {fmt} to {output}", err=True)


def _fail(message: str) -> None:
    typer.secho(f"pantau: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
