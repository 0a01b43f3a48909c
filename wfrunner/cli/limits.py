"""``wfrunner limits``: the concurrency limits in use, fleet-wide."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime


@cli.command()
def limits(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the run limits of workflows (runs running / max, queued) and the limits of
    handlers (busy slots / max)."""
    from wfrunner.waits import limits as read

    found = read(resolved_runtime())
    if as_json:
        echo(json.dumps(found, indent=2))
        return
    if not found["workflows"] and not found["handlers"]:
        echo("no concurrency limit in use")
        return
    for w in found["workflows"]:
        echo(
            f"workflow {w['workflow']}: {w['running']} of {w['max_runs']} runs running, "
            f"{w['queued']} queued"
        )
        if w["queued_runs"]:
            echo(f"    next: {', '.join(w['queued_runs'][:5])}")
    for h in found["handlers"]:
        echo(f"handler  {h['handler']}: {h['busy']} of {h['max_concurrency']} slots busy")
