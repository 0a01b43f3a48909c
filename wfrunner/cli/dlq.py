"""``wfrunner dlq``: node messages whose attempts ran out, and resuming their runs."""

from __future__ import annotations

from typing import Annotated

import typer

from wfrunner.cli.app import dlq_cli, echo


@dlq_cli.command("list")
def dlq_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include retried letters.")] = False,
) -> None:
    """List dead letters: id, run, node, attempts, error."""
    from wfrunner.runtime import runtime

    letters = runtime().store.list_dead_letters(None if show_all else "open")
    if not letters:
        echo("no dead letters")
        return
    for d in letters:
        echo(f"{d.id:>6}  {d.status:<8} run {d.run_id}  node {d.node_id}  attempts {d.attempts}")
        echo(f"        {d.error}")


@dlq_cli.command("retry")
def dlq_retry(letter_id: int) -> None:
    """Resume the failed run of a dead letter; prints the run id."""
    from wfrunner.recovery import retry_dead_letter
    from wfrunner.runtime import runtime
    from wfrunner.tasks.execution import dispatch

    rt = runtime()
    run_id, tokens = retry_dead_letter(rt, letter_id)
    workflow_id = rt.store.get_run(run_id).workflow_id
    dispatch(tokens, workflow_id, rt.ir(workflow_id))
    echo(run_id)
