"""``wfrunner dlq``: messages set aside. Node messages whose attempts ran out (``retry``
resumes their run) and poison messages no task could be made of (shown, never retried).

Every command first moves poison messages parked in Redis into PostgreSQL
(:func:`wfrunner.poison.drain`), so a letter is listed as soon as a worker set it aside.
"""

from __future__ import annotations

from typing import Annotated

import typer

from wfrunner.cli.app import dlq_cli, echo, shorten
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.params import letter_id

#: characters of a poison message's raw text shown by ``dlq list``
RAW_SHOWN = 120


@dlq_cli.command("list")
def dlq_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include retried letters.")] = False,
) -> None:
    """List dead letters: id, run, node, attempts, error; poison: queue, reason, raw."""
    from wfrunner.client import list_dead_letters

    letters = list_dead_letters(None if show_all else "open", resolved_runtime())
    if not letters:
        echo("no dead letters")
        return
    for d in letters:
        if d.kind == "poison":
            echo(f"{d.id:>6}  {d.status:<8} poison on {d.queue}")
            echo(f"        {d.error}")
            echo(f"        raw: {shorten(d.raw or '', RAW_SHOWN)}")
            continue
        echo(f"{d.id:>6}  {d.status:<8} run {d.run_id}  node {d.node_id}  attempts {d.attempts}")
        echo(f"        {d.error}")


@dlq_cli.command("retry")
def dlq_retry(
    letter: Annotated[int, typer.Argument(metavar="LETTER_ID", parser=letter_id)],
) -> None:
    """Resume the failed run of a dead letter; prints the run id."""
    from wfrunner.client import retry_dead_letter

    echo(retry_dead_letter(letter, resolved_runtime()))
