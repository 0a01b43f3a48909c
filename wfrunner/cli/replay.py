"""``replay``: a run's state rebuilt from its event log, and how it differs from storage.

Exit codes: 0 the replay matches what is stored, 1 it differs (each difference on its
own line), 2 no such run (or another bad input).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.params import RunId

#: exit code when the replay differs from the stored state
DIFFERS_EXIT = 1


@cli.command()
def replay(
    run_id: RunId,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Rebuild a run's state from its events alone and compare it with the stored state.

    Live runs are compared with Redis, ended ones with PostgreSQL. Exits 1 when they
    differ, 2 for an unknown run id."""
    from wfrunner.replay import replay_run

    report = replay_run(run_id, resolved_runtime())
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for line in report.lines():
            echo(line)
    if not report.identical:
        raise typer.Exit(DIFFERS_EXIT)


__all__ = ["replay"]
