"""Wall-clock numbers of the compiler and the CEL evaluator, printed, never asserted.

Tests check behaviour; how long it takes belongs here. Run from the repository root::

    python bench/compile_and_cel.py

Prints, for this machine: compiling a 10,000-node chain and the largest workflow the
limits allow, and how long the CEL step budget takes to stop a nested-map bomb.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wfrunner import conditions
from wfrunner.compiler import compile_workflow, limits
from wfrunner.errors import ConditionError


def chain(count: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "function", "config": {"function_name": "f"}}
             for i in range(count)]  # fmt: skip
    return {"nodes": nodes, "edges": [{"from": f"n{i}", "to": f"n{i + 1}"}
                                      for i in range(count - 1)]}  # fmt: skip


def timed(label: str, work: Callable[[], object], repeat: int = 3) -> None:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<55} {best * 1000:>9.1f} ms (best of {repeat})")


def map_bomb() -> None:
    ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    bomb = f"{ten}.map(a, {ten}.map(b, {ten}.map(c, {ten}.map(d, {ten}.map(e, a)))))"
    try:
        conditions.evaluate(bomb, {})
    except ConditionError:
        return
    raise AssertionError("the map bomb was not stopped by the step budget")


def main() -> None:
    timed("compile a 10,000-node chain", lambda: compile_workflow(chain(10_000)))
    timed(
        f"compile a {limits.MAX_NODES:,}-node chain",
        lambda: compile_workflow(chain(limits.MAX_NODES)),
    )
    timed("CEL: stop a nested-map bomb at the step budget", map_bomb)


if __name__ == "__main__":
    main()
