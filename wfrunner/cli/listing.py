"""``wfrunner runs`` and ``wfrunner workflows``: newest first, one page at a time.

The next page's cursor goes to stderr, so ``--json`` output stays one JSON value a script
can parse while a person still sees how to go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer

from wfrunner.cli.app import cli, echo, shorten
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.params import text_id
from wfrunner.store import DEFAULT_LIMIT, MAX_LIMIT, Page, RunSummary

#: characters of a run's error shown in the table (``--json`` has it whole)
ERROR_SHOWN = 60

CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="The next page, as the last one printed it.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON array for scripts.")]


@cli.command()
def runs(
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", metavar="WORKFLOW_ID", parser=text_id, help="One workflow's runs."
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", metavar="STATUS", help="Runs in this status (repeat for several)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="Runs created since: ISO-8601, or an age (30m, 1h, 2d)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help=f"Runs per page (1 to {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first: id, workflow, status, times, error."""
    from wfrunner.client import list_runs

    page = list_runs(workflow, status, since, limit, cursor, resolved_runtime())
    if as_json:
        echo(json.dumps([run.to_dict() for run in page.items], indent=2))
    elif page.items:
        _print_table(page.items)
    else:
        echo("no runs", err=True)
    _next_page(page)


def _print_table(items: list[RunSummary]) -> None:
    """Plain columns, one run a line, never wrapped: ``grep`` and ``cut`` read it too."""
    rows = [
        (
            run.run_id,
            f"{run.workflow_name} v{run.workflow_version}",
            run.status.value,
            _time(run.created_at),
            _time(run.completed_at),
            shorten(run.error or "", ERROR_SHOWN),
        )
        for run in items
    ]
    _columns(("run", "workflow", "status", "created", "ended", "error"), rows)


def _columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Cells padded to their column's width, the last one not (it may be long)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


@cli.command()
def workflows(
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", parser=text_id, help="Only this name's versions."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help=f"Workflows per page (1 to {MAX_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
) -> None:
    """List registered workflows, newest first: name, version, id, registered at.

    'wfrunner run NAME' runs a name's latest version, 'wfrunner run NAME@VERSION' another."""
    page = resolved_runtime().store.list_workflows(name=name, limit=limit, cursor=cursor)
    if as_json:
        echo(json.dumps([item.to_dict() for item in page.items], indent=2))
    elif page.items:
        rows = [(w.name, str(w.version), w.workflow_id, _time(w.created_at)) for w in page.items]
        _columns(("name", "version", "id", "registered"), rows)
    else:
        echo(f"no workflow named {name!r}" if name else "no workflows registered", err=True)
    _next_page(page)


def _next_page(page: Page[Any]) -> None:
    if page.next_cursor is not None:
        echo(f"next page: --cursor {page.next_cursor}", err=True)


def _time(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


__all__ = ["runs", "workflows"]
