"""How the ``filter`` built-in scales with its list: time for 1k, 10k and 100k elements.

Run from the worktree root: ``python bench/filter_scaling.py [sizes...]``. Linear work
shows as roughly ten times the time for ten times the elements. The variables carry the
list too (``input`` and ``inputs``), as they do on a real node, and the expression reads
``inputs`` beside ``value``: before the variables were converted once per node evaluation,
each element converted the whole list again (quadratic: 1,000 elements took 30 s on the
machine where 1,000 now take a fraction of that). Not a test: timings vary by machine.
"""

from __future__ import annotations

import sys
import time

from wfrunner import conditions
from wfrunner.builtins import run_builtin

EXPRESSION = "value % 100 >= inputs.threshold && size(inputs.rows) > 0"


def measure(n: int) -> float:
    data = list(range(n))
    variables = {"input": data, "inputs": {"threshold": 50, "rows": data}, "ctx": {}}
    started = time.perf_counter()
    kept = run_builtin("f", "filter", {"filter_expression": EXPRESSION}, data, variables)
    elapsed = time.perf_counter() - started
    assert len(kept) == sum(1 for i in data if i % 100 >= 50)
    return elapsed


def main(sizes: list[int]) -> None:
    conditions.check(EXPRESSION)  # builds the CEL parser and compiles: not part of a filter
    previous = None
    for n in sizes:
        elapsed = measure(n)
        ratio = ""
        if previous:
            ratio = f"  x{elapsed / previous[1]:.1f} for x{n // previous[0]} elements"
        print(f"{n:>8,} elements: {elapsed:8.2f} s  ({elapsed / n * 1e6:6.1f} us/element){ratio}")
        previous = (n, elapsed)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000])
