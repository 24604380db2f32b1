"""`pantau alerting ...`: check rule files and Alertmanager files before deploying them, as
`promtool check rules` and `amtool check-config` do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Check alerting rule and Alertmanager files.")


@app.command("check-rules")
def check_rules(files: Annotated[list[Path], typer.Argument(help="Prometheus rule files")]) -> None:
    """Check rule files; every problem is printed as file:line: reason."""
    from pantau.alerting.rules import RuleFileError, parse_file

    failed = False
    for f in files:
        try:
            groups = parse_file(f, 60.0)
        except RuleFileError as exc:
            failed = True
            for p in exc.problems:
                typer.secho(p, fg=typer.colors.RED, err=True)
            continue
        n = sum(len(g.rules) for g in groups)
        typer.echo(f"{f}: SUCCESS: {len(groups)} groups, {n} rules found")
    if failed:
        raise typer.Exit(1)


@app.command("check-config")
def check_config(files: Annotated[list[Path], typer.Argument(help="Alertmanager configuration files")]) -> None:
    """Check Alertmanager configuration files (routes, receivers, inhibit rules, templates)."""
    from pantau.alerting import amconfig
    from pantau.alerting.templates import Template, TemplateError

    failed = False
    for f in files:
        try:
            cfg = amconfig.load(f)
            t = Template()
            for tf in cfg.template_files():
                t.add(tf.read_text())
        except (amconfig.AMConfigError, TemplateError, OSError) as exc:
            failed = True
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            continue
        unsupported = {k for r in cfg.receivers for k in r.unsupported()}
        typer.echo(f"{f}: SUCCESS: {len(cfg.receivers)} receivers, {len(cfg.inhibit_rules)} inhibit rules")
        if unsupported:
            typer.secho(f"  not supported by pantau (ignored): {', '.join(sorted(unsupported))}",
                        fg=typer.colors.YELLOW)
    if failed:
        raise typer.Exit(1)
