"""A delivery's lease holder id names its Celery task: what a cancel revokes."""

from __future__ import annotations

from wfrunner.engine.leases import APPROVAL, RETRY, delivery_holder, task_of


def test_a_delivery_lease_names_its_task_and_other_entries_name_none() -> None:
    first, second = delivery_holder("task-1"), delivery_holder("task-1")
    assert first != second  # two deliveries of one message never share a lease
    assert task_of(first) == task_of(second) == "task-1"
    assert task_of(RETRY) is None and task_of(APPROVAL) is None and task_of("") is None
