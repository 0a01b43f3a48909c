"""The small parsers behind the runs list and the API: ages and times, cursors, where a
compile problem is, which hosts are loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wfrunner.api.errors import problem_location
from wfrunner.cli.serve import is_loopback
from wfrunner.client import run_statuses
from wfrunner.errors import QueryError
from wfrunner.since import parse_since
from wfrunner.states import RunStatus
from wfrunner.store.cursor import Keyset

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1h", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30:00Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        (
            "2026-12-01T09:30:00+02:00",
            datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_since_accepts_ages_and_iso_times(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1y", "-1h", "1.5h", "h", "2026-13-01"])
def test_since_refuses_anything_else_naming_the_field(text: str) -> None:
    with pytest.raises(QueryError, match="is neither an ISO-8601 time") as caught:
        parse_since(text, NOW)
    assert caught.value.field == "since"


def test_since_refuses_an_age_before_year_one() -> None:
    with pytest.raises(QueryError, match="before the year 1"):
        parse_since("999999999w", NOW)


def test_statuses_in_any_case_and_unknown_ones_named() -> None:
    assert run_statuses(None) == []
    assert run_statuses("failed") == [RunStatus.FAILED]
    assert run_statuses(["QUEUED", RunStatus.RUNNING]) == [RunStatus.QUEUED, RunStatus.RUNNING]
    with pytest.raises(QueryError, match="status 'DONE' is not one of CANCELLED, COMPLETED"):
        run_statuses(["DONE"])


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    key = Keyset(NOW, "abc")
    assert Keyset.decode(key.encode()) == key
    naive = Keyset(NOW.replace(tzinfo=None), "abc").encode()
    for cursor in [naive, "", "!!", key.encode()[:-3]]:
        with pytest.raises(QueryError, match="is not a cursor") as caught:
            Keyset.decode(cursor)
        assert caught.value.field == "cursor"


@pytest.mark.parametrize(
    ("problem", "loc"),
    [
        ("node 'a': duplicate id (nodes[0] and nodes[1])", ["body", "nodes", "a"]),
        ("node 'b'.type: is \"teleport\"", ["body", "nodes", "b"]),
        ("loop 'e': config.max_iterations is required", ["body", "nodes", "e"]),
        ('edge a->ghost: unknown node "ghost"', ["body", "edges", "a->ghost"]),
        ("workflow has no entry node", ["body"]),
    ],
)
def test_problem_location_names_the_node_or_edge(problem: str, loc: list[str]) -> None:
    assert problem_location(problem) == loc


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("my-host", False),
    ],
)
def test_only_loopback_hosts_may_serve_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
