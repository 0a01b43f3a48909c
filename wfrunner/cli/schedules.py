"""``wfrunner schedules``: list the cron schedules, pause, resume or fire one now."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from wfrunner.cli.app import cli, echo
from wfrunner.cli.connect import resolved_runtime
from wfrunner.cli.listing import _columns
from wfrunner.cli.params import text_id

schedules_cli = typer.Typer(
    help="List the cron schedules (a definition's 'schedule', fired by Celery beat); "
    "pause, resume or fire one, or show its fires.",
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
)
cli.add_typer(schedules_cli, name="schedules")

ScheduleName = Annotated[
    str, typer.Argument(metavar="NAME", parser=text_id, help="The workflow's name.")
]
_JSON = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@schedules_cli.callback()
def schedules(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List the schedules: name, cron, next fire, last fired, last run, policy."""
    if ctx.invoked_subcommand is not None:
        return
    from wfrunner.schedules.views import schedule_view

    rt = resolved_runtime()
    views = [schedule_view(rt, record) for record in rt.store.list_schedules()]
    if as_json:
        echo(json.dumps(views, indent=2))
    elif views:
        _columns(
            ("name", "cron", "state", "next fire", "last fired", "last run", "policy"),
            [_row(v) for v in views],
        )
    else:
        echo("no schedules (add a 'schedule' to a workflow definition)", err=True)


def _row(view: dict[str, Any]) -> tuple[str, ...]:
    last = view["last_run_id"]
    return (
        f"{view['name']}@{view['version']}",
        f"{view['cron']} {view['timezone']}",
        view["state"],
        _time(view["next_fire_at"]),
        _time(view["last_fired_at"]),
        f"{last} {view['last_run_status']}" if last else "-",
        f"overlap={view['overlap']} catch_up={view['catch_up']}",
    )


def _time(iso: str | None) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@schedules_cli.command()
def pause(name: ScheduleName) -> None:
    """Stop firing a schedule (until 'resume'; registering a new version keeps it paused)."""
    _set_paused(name, True)


@schedules_cli.command()
def resume(name: ScheduleName) -> None:
    """Fire a paused schedule again, from now on (what it missed while paused is not fired)."""
    _set_paused(name, False)


def _set_paused(name: str, paused: bool) -> None:
    from wfrunner.schedules.control import set_paused

    record = set_paused(resolved_runtime(), name, paused)
    echo(f"schedule {record.name}: {'paused' if record.paused else 'active'}")


@schedules_cli.command()
def fire(name: ScheduleName) -> None:
    """Fire a schedule now (its overlap policy applies); prints the run id it started."""
    from wfrunner.schedules.firing import fire_now

    report = fire_now(resolved_runtime(), name)
    for run_id in report.started.get(name, []):
        echo(run_id)
    if name in report.skipped:
        echo(f"schedule {name}: skipped: its previous run is still going", err=True)
    if name in report.waiting:
        echo(f"schedule {name}: waiting for its previous run to end", err=True)


@schedules_cli.command()
def history(name: ScheduleName, as_json: _JSON = False) -> None:
    """A schedule's latest fires: started (its run), skipped, waiting or missed, and why."""
    rt = resolved_runtime()
    rt.store.get_schedule(name)  # NotFoundError names the schedules
    fires = rt.store.list_fires(name)
    if as_json:
        echo(json.dumps([f.to_dict() for f in fires], indent=2))
        return
    rows = [
        (
            _time(f.fire_time.isoformat()),
            f.status if not f.missed else f"{f.status} ({f.missed})",
            f.run_id or "-",
            f.detail or "",
        )
        for f in fires
    ]
    if rows:
        _columns(("fire time", "status", "run", "detail"), rows)
    else:
        echo(f"schedule {name} has not fired yet", err=True)


__all__ = ["schedules_cli"]
