"""``cancel``, ``pause``, ``resume``, ``rerun``, ``approve``, ``reject``: an operator's
changes to a run.

Each prints the run's status after the change (``--json``: the run document) and exits 0;
an unknown run or node exits 2, as does a change the run's state does not allow (it has
ended, is paused already or not paused, has not failed, the approval is not waiting or
was decided already), with a message saying which.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.params import RunId, json_input, text_id

_JsonOption = Annotated[bool, typer.Option("--json", help="Print the run document.")]
NodeId = Annotated[str, typer.Argument(metavar="NODE_ID", parser=text_id, show_default=False)]
_Comment = Annotated[
    str | None, typer.Option("--comment", "-m", help="Why: kept in the run's history.")
]
_Reason = Annotated[
    str | None, typer.Option("--reason", "-m", help="Why: kept in the run's history.")
]
_By = Annotated[
    str | None,
    typer.Option("--by", help="Who decides (default: the login name); kept in the history."),
]


def _who(by: str | None) -> str | None:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's uid): nobody named
        return None


def _show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo(json.dumps(doc, indent=2))
        return
    waiting = [n for n, info in doc["nodes"].items() if info["status"] == "WAITING"]
    suffix = f" (waiting for approval: {', '.join(waiting)})" if waiting else ""
    echo(f"{doc['run_id']} {doc['status']}{suffix}")


@cli.command()
def cancel(
    run_id: RunId,
    reason: Annotated[
        str | None, typer.Option("--reason", "-m", help="Why: the run's error says it.")
    ] = None,
    by: _By = None,
    no_terminate: Annotated[
        bool,
        typer.Option(
            "--no-terminate",
            help="Let running handlers finish (their results are dropped) instead of "
            "terminating their tasks.",
        ),
    ] = False,
    as_json: _JsonOption = False,
) -> None:
    """Cancel a run: no node starts again, running handlers are stopped, it ends CANCELLED.

    Running handlers' Celery tasks are revoked with terminate (prefork pool) unless
    --no-terminate is given; their results are refused either way."""
    from wfrunner.control import cancel_run

    doc = cancel_run(run_id, reason, by=_who(by), terminate=not no_terminate, rt=resolved_runtime())
    _show(doc, as_json)


def _decide(
    choice: str,
    run_id: str,
    node_id: str,
    comment: str | None,
    by: str | None,
    data: str | None,
    as_json: bool,
) -> None:
    from wfrunner.control import decide_approval

    doc = decide_approval(
        run_id,
        node_id,
        choice,
        comment=comment,
        by=_who(by),
        data=json_input(data, "--data", None),
        rt=resolved_runtime(),
    )
    _show(doc, as_json)


@cli.command()
def approve(
    run_id: RunId,
    node_id: NodeId,
    comment: _Comment = None,
    by: _By = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="JSON the node's output carries (output.data)."),
    ] = None,
    as_json: _JsonOption = False,
) -> None:
    """Approve a waiting human node: the run goes on, the decision as the node's output."""
    _decide("approve", run_id, node_id, comment, by, data, as_json)


@cli.command()
def reject(
    run_id: RunId,
    node_id: NodeId,
    comment: _Comment = None,
    by: _By = None,
    as_json: _JsonOption = False,
) -> None:
    """Reject a human node that is waiting: the node and its run fail, with the comment."""
    _decide("reject", run_id, node_id, comment, by, None, as_json)


@cli.command()
def pause(
    run_id: RunId,
    reason: _Reason = None,
    by: _By = None,
    as_json: _JsonOption = False,
) -> None:
    """Pause a run: no node of it starts until `resume`; running nodes finish."""
    from wfrunner.control import pause_run

    _show(pause_run(run_id, reason, by=_who(by), rt=resolved_runtime()), as_json)


@cli.command()
def resume(run_id: RunId, by: _By = None, as_json: _JsonOption = False) -> None:
    """Resume a paused run where it stopped: nothing done runs again."""
    from wfrunner.control import resume_run

    _show(resume_run(run_id, by=_who(by), rt=resolved_runtime()), as_json)


@cli.command()
def rerun(
    run_id: RunId,
    from_node: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="NODE_ID",
            parser=text_id,
            help="Run this completed node and everything downstream of it again too.",
        ),
    ] = None,
    reason: _Reason = None,
    by: _By = None,
    as_json: _JsonOption = False,
) -> None:
    """Rerun a FAILED or CANCELLED run from its failed nodes, as a new attempt of it.

    Completed nodes keep their outputs and do not run again; --from NODE_ID runs that
    node and all that follows it again as well."""
    from wfrunner.control import rerun as redrive

    doc = redrive(run_id, from_node, reason=reason, by=_who(by), rt=resolved_runtime())
    _show(doc, as_json)
