"""``doctor``: why runs are stuck, and the repair of one.

Without a run id it diagnoses every RUNNING and WAITING run and lists the stuck ones
(``--all``: every one). Exit codes: 0 nothing stuck (or a repair done), 1 a stuck run
was found, 2 an unknown run, a repair the run's state does not allow, or bad input.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from wfrunner.cli.app import cli, echo, shorten
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.operate import _who
from wfrunner.cli.params import text_id

if TYPE_CHECKING:
    from wfrunner.doctor.reasons import Diagnosis

#: exit code when a stuck run was found
STUCK_EXIT = 1


class RepairAction(StrEnum):
    REQUEUE = "requeue"
    REBUILD = "rebuild"
    FAIL = "fail"
    CANCEL = "cancel"


def _run_ids(values: list[str] | None) -> list[str]:
    return [text_id(v) for v in values or []]


#: what each suggested action means on the command line
_HINTS = {
    "requeue": "--repair requeue",
    "rebuild": "--repair rebuild",
    "fail": "--repair fail",
    "cancel": "--repair cancel",
    "start_worker": "start a worker",
    "wait": "wait (reconciler)",
}


@cli.command()
def doctor(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="RUN_ID", show_default=False, help="Runs to diagnose."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every active run, not only the stuck ones.")
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="SECONDS",
            min=0,
            help="Only runs that have not progressed for at least SECONDS.",
        ),
    ] = None,
    repair: Annotated[
        RepairAction | None,
        typer.Option(
            "--repair",
            help="Repair the runs named: requeue (publish stalled tokens again), rebuild "
            "(hot state from PostgreSQL), fail, cancel.",
        ),
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Why (fail, cancel): kept in the run.")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who repairs (default: the login name).")
    ] = None,
) -> None:
    """Diagnose stuck runs: lost messages, dead workers, waiting joins and approvals,
    lost hot state, idle runs; and repair one (--repair).

    Exits 1 when a stuck run is found, 0 when none is, 2 for an unknown run."""
    from wfrunner.doctor.run import diagnose_runs
    from wfrunner.doctor.run import repair as repair_run

    ids = _run_ids(run_ids)
    rt = resolved_runtime()
    if repair is not None:
        if not ids:
            raise typer.BadParameter("name the runs to repair", param_hint="'--repair'")
        done = [repair_run(r, repair.value, reason=message, by=_who(by), rt=rt) for r in ids]
        if as_json:
            echo(json.dumps([d.to_dict() for d in done], indent=2))
        else:
            for d in done:
                echo(f"{d.run_id} {d.action}: {d.summary} (now {d.status})")
        return
    found = diagnose_runs(ids, stuck_only=not (ids or show_all), older_than=older_than, rt=rt)
    stuck = [d for d in found if d.stuck]
    if as_json:
        echo(json.dumps({"runs": [d.to_dict() for d in found], "stuck": len(stuck)}, indent=2))
    else:
        _print(found, len(stuck))
    if stuck:
        raise typer.Exit(STUCK_EXIT)


def _print(found: list[Diagnosis], stuck: int) -> None:
    from wfrunner.doctor.describe import clock
    from wfrunner.doctor.run import age_text

    if not found:
        echo("no stuck run")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("run", "workflow", "status", "age", "idle", "findings", "action"):
        table.add_column(column, overflow="fold")
    for d in found:
        kinds = sorted({f.kind for f in d.findings if f.stuck}) or sorted(
            {f.kind for f in d.findings}
        )
        table.add_row(
            d.run_id,
            d.workflow,
            d.status + (" STUCK" if d.stuck else ""),
            age_text(d.age),
            age_text(d.idle),
            ", ".join(kinds),
            _HINTS.get(d.action or "", "-"),
        )
    Console(highlight=False, soft_wrap=False, width=160).print(table)
    notes: list[str] = []
    for d in found:
        echo(f"{d.run_id} ({d.workflow}, {d.status}):")
        for f in d.findings:
            mark = "STUCK " if f.stuck else ""
            echo(f"  - {mark}{f.kind}: {shorten(f.summary, 400)}")
        if d.fails_at is not None and d.stuck:
            echo(f"  the timeout detector fails it at about {clock(d.fails_at)} unless it moves")
        notes += [n for n in d.notes if n not in notes]
    for note in notes:
        echo(f"note: {note}")
    echo(f"{len(found)} runs shown, {stuck} stuck")


__all__ = ["doctor"]
