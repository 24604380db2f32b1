"""The `pantau` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

# httpx imports its own command-line client, and with it rich and pygments (~10 MB), whenever
# those are installed; pantau never uses that client, so `pantau serve` is spared it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

import typer  # noqa: E402

from pantau.alerting import cli as alerting_cli  # noqa: E402
from pantau.config import ConfigError, load_config  # noqa: E402
from pantau.exporting.cli import export_app  # noqa: E402
from pantau.logs.cli import logs_app  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pantau: all-in-one observability on OpenTelemetry.")
app.add_typer(alerting_cli.app, name="alerting")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"pantau: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="pantau.yaml")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where data is stored")] = None,
    bind: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="API and UI port (default 3000)")] = None,
    otlp_http_port: Annotated[int | None, typer.Option(help="OTLP/HTTP port (default 4318)")] = None,
    otlp_grpc_port: Annotated[int | None, typer.Option(help="OTLP/gRPC port (default 4317)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Run the hub: receive OTLP, store, serve the query APIs."""
    from pantau.hub import Hub, HubError

    _limit_malloc_arenas()

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    overrides = {"bind": bind, "port": port, "otlp_http_port": otlp_http_port,
                 "otlp_grpc_port": otlp_grpc_port}
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg.server, key, value)
    if data_dir is not None:
        cfg.storage.data_dir = data_dir
    hub = Hub(cfg)
    try:
        _run(hub.serve())
    except HubError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


def _run(main) -> None:
    """Run on uvloop when it is installed (it comes with uvicorn[standard]): its C event loop
    measured +35% log ingest over asyncio's, and gRPC's asyncio server runs on it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _limit_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena; with the writer, the
    reader threads and gRPC's, freed memory stays spread over many arenas and RSS only grows.
    Two arenas (what MALLOC_ARENA_MAX=2 does) keep it near the live size."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


app.add_typer(export_app, name="export")

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(audit_app, name="audit")
app.add_typer(logs_app, name="logs")


def _audit_entries(data_dir: Path):
    if not (data_dir / "audit.db").exists():
        _fail(f"no audit log in {data_dir} (is it a pantau data directory?)")
    from pantau.store.sqlite.audit import read_chain

    return read_chain(data_dir / "audit.db")


@audit_app.command("verify")
def audit_verify(
    data_dir: Annotated[Path, typer.Option(help="The hub's data directory")] = Path("pantau-data"),
    expect_head: Annotated[str | None, typer.Option(help="A head hash recorded earlier (pantau audit head)")] = None,
    expect_count: Annotated[int | None, typer.Option(help="The entry count recorded with it")] = None,
) -> None:
    """Prove that no audit record was changed, removed or reordered; name the first broken link."""
    from pantau.logs.audit import verify

    verdict = verify(_audit_entries(data_dir), expect_head, expect_count)
    if verdict.ok:
        typer.echo(f"audit log intact: {verdict.count} records, head {verdict.head}")
        return
    typer.secho(f"audit log BROKEN at entry {verdict.first_broken}: {verdict.reason} "
                f"({verdict.count} records verified before it)", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@audit_app.command("head")
def audit_head(
    data_dir: Annotated[Path, typer.Option(help="The hub's data directory")] = Path("pantau-data"),
) -> None:
    """Print the chain's length and last hash, to write down somewhere else."""
    last = None
    for last in _audit_entries(data_dir):  # noqa: B007
        pass
    typer.echo(f"{last.seq if last else 0} {last.hash.hex() if last else '0' * 64}")


from pantau.anomaly.backtest import app as anomaly_app  # noqa: E402

app.add_typer(anomaly_app, name="anomaly")


@app.command()
def version() -> None:
    """Print pantau's version."""
    from pantau import __version__

    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
