"""The finisher thread of a worker process (wfrunner/tasks/finisher.py): ends are
recorded off the task's thread, one at a time, and none is left behind at exit."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from wfrunner.tasks.finisher import Finisher


def test_work_runs_in_the_finisher_thread() -> None:
    finisher = Finisher()
    ran: list[str] = []
    finisher.submit(lambda: ran.append(threading.current_thread().name))
    finisher.drain()
    assert len(ran) == 1 and ran[0].startswith("wfrunner-finisher")


def test_at_most_one_end_is_in_hand() -> None:
    """A second hand-over waits until the end before it is done: a slow PostgreSQL slows
    the tasks instead of piling ends up."""
    finisher = Finisher()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        release.wait(10)
        order.append("first done")

    finisher.submit(first)
    second_handed = threading.Event()

    def hand_second() -> None:
        finisher.submit(lambda: order.append("second"))
        second_handed.set()

    threading.Thread(target=hand_second).start()
    assert not second_handed.wait(0.3)  # still waiting for the first
    release.set()
    assert second_handed.wait(10)
    finisher.drain()
    assert order == ["first done", "second"]


def test_drain_waits_for_the_end_in_hand() -> None:
    finisher = Finisher()
    release = threading.Event()
    done: list[bool] = []
    finisher.submit(lambda: (release.wait(10), done.append(True)))
    threading.Timer(0.2, release.set).start()
    finisher.drain()
    assert done == [True]


def test_a_forked_process_does_not_wait_for_its_parents_end() -> None:
    """A pool process forked with an end in hand in its parent has no such thread: its
    first hand-over starts a thread of its own instead of waiting forever."""
    finisher = Finisher()
    finisher._pid = -1  # as seen from a child forked after the parent handed over
    finisher._pending = Future()  # never done: the parent's thread is not in the child
    ran = threading.Event()
    finisher.submit(ran.set)
    assert ran.wait(10)
    finisher.drain()
