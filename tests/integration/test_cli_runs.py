"""``wfrunner runs``, run as a user runs it (the console script) on real PostgreSQL."""

from __future__ import annotations

import json
import os

import pytest

from tests.entry_point import invoke
from wfrunner.states import RunStatus
from wfrunner.store import Store

DEFINITION = {"nodes": [{"id": "a", "type": "function"}], "edges": []}


@pytest.fixture()
def env(redis_url: str, database_url: str) -> dict[str, str]:
    return {**os.environ, "WFRUNNER_REDIS_URL": redis_url, "WFRUNNER_DATABASE_URL": database_url}


@pytest.fixture()
def runs(store: Store) -> dict[str, list[str]]:
    """Three runs of 'billing' (the last FAILED) and two of 'mail', oldest first."""
    made: dict[str, list[str]] = {}
    for name, count in [("billing", 3), ("mail", 2)]:
        workflow = store.register_workflow(name, DEFINITION, {"nodes": {}})
        made[name] = [store.create_run(workflow.id, {}, 1).id for _ in range(count)]
        made[f"{name}_id"] = [workflow.id]
    store.transition_run(made["billing"][-1], RunStatus.FAILED, error="node 'a' failed: boom")
    return made


def test_table_json_filters_and_the_next_page_cursor(
    env: dict[str, str], runs: dict[str, list[str]]
) -> None:
    table = invoke("runs", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["run", "workflow", "status", "created", "ended", "error"]
    newest_first = runs["mail"][::-1] + runs["billing"][::-1]
    assert [line.split()[0] for line in lines[1:]] == newest_first
    assert "billing v1" in table.stdout and "node 'a' failed: boom" in table.stdout
    assert table.stderr == ""

    first = invoke("runs", "--json", "--limit", "2", env=env)
    assert [r["run_id"] for r in json.loads(first.stdout)] == newest_first[:2]
    assert first.stderr.startswith("next page: --cursor ")
    cursor = first.stderr.split()[-1]
    rest = invoke("runs", "--json", "--limit", "5", "--cursor", cursor, env=env)
    assert [r["run_id"] for r in json.loads(rest.stdout)] == newest_first[2:]
    assert rest.stderr == ""

    failed = json.loads(invoke("runs", "--json", "--status", "failed", env=env).stdout)
    assert [(r["run_id"], r["status"], r["workflow_name"]) for r in failed] == [
        (runs["billing"][-1], "FAILED", "billing")
    ]
    several = invoke("runs", "--json", "--status", "FAILED", "--status", "QUEUED", env=env)
    assert len(json.loads(several.stdout)) == 5
    mail = invoke("runs", "--json", "--workflow", runs["mail_id"][0], "--since", "1h", env=env)
    assert [r["run_id"] for r in json.loads(mail.stdout)] == runs["mail"][::-1]
    future = invoke("runs", "--since", "2999-01-01T00:00:00Z", env=env)
    assert future.returncode == 0 and future.stdout == "" and future.stderr == "no runs\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "error: since 'yesterday' is neither an ISO-8601 time"),
        (["--since", "99999999w"], "error: since '99999999w' reaches back before the year 1"),
        (["--status", "DONE"], "error: status 'DONE' is not one of CANCELLED, COMPLETED,"),
        (["--limit", "0"], "error: limit 0 is out of range: 1 to 500"),
        (["--limit", "501"], "error: limit 501 is out of range: 1 to 500"),
        (["--cursor", "bogus"], "error: cursor 'bogus' is not a cursor a previous page"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    env: dict[str, str], store: Store, args: list[str], message: str
) -> None:
    done = invoke("runs", *args, env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
