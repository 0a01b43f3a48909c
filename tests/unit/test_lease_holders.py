"""A delivery's lease holder id names its Celery task: what a cancel revokes."""

from __future__ import annotations

import os
import socket

from wfrunner.engine.leases import APPROVAL, RETRY, delivery_holder, place_of, task_of


def test_a_delivery_lease_names_its_task_and_other_entries_name_none() -> None:
    first, second = delivery_holder("task-1"), delivery_holder("task-1")
    assert first != second  # two deliveries of one message never share a lease
    assert task_of(first) == task_of(second) == "task-1"
    assert task_of(RETRY) is None and task_of(APPROVAL) is None and task_of("") is None


def test_a_delivery_lease_names_the_host_and_process_that_holds_it() -> None:
    holder = delivery_holder("task-1")
    assert place_of(holder) == (socket.gethostname().replace("@", "_"), os.getpid())
    assert place_of(RETRY) is None and place_of("") is None
    assert place_of("0123abcd@task-1") is None  # a holder made before it named its place
