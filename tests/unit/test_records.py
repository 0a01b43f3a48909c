"""The typed records ``wfrunner.list_runs`` returns turn into JSON with ``to_dict()``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from wfrunner.states import RunStatus
from wfrunner.store.records import Page, RunSummary, WorkflowSummary

WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_page_of_runs_is_json_with_iso_times_and_status_names() -> None:
    run = RunSummary("r1", "w1", "orders", 2, RunStatus.WAITING, None, WHEN, WHEN, None)
    page = Page([run], "next")
    assert run.status is RunStatus.WAITING  # typed attributes
    assert page.to_dict() == {
        "items": [
            {
                "run_id": "r1",
                "workflow_id": "w1",
                "workflow_name": "orders",
                "workflow_version": 2,
                "status": "WAITING",
                "error": None,
                "created_at": "2026-12-06T12:00:00+00:00",
                "started_at": "2026-12-06T12:00:00+00:00",
                "completed_at": None,
            }
        ],
        "next_cursor": "next",
    }
    json.dumps(page.to_dict())


def test_a_workflow_summary_is_json_too() -> None:
    summary = WorkflowSummary("w1", "orders", 3, WHEN)
    assert summary.to_dict() == {
        "workflow_id": "w1",
        "name": "orders",
        "version": 3,
        "created_at": "2026-12-06T12:00:00+00:00",
    }
