"""The no-op handler of the benchmark's workflows, loaded by its wfrunner worker
(``WFRUNNER_HANDLERS=bench.handlers``): the engine's own cost is what is measured."""

from __future__ import annotations

from typing import Any

import wfrunner

#: every node's output, small and constant, so joins carry no growing payloads
OUTPUT = {"x": 1}


@wfrunner.handler("bench.noop")
def noop(value: Any, config: dict[str, Any]) -> Any:
    return OUTPUT
