"""The no-op handler of the benchmark's workflows, loaded by its wfrunner worker
(``WFRUNNER_HANDLERS=bench.handlers``): the engine's own cost is what is measured."""

from __future__ import annotations

import time
from typing import Any

import wfrunner

#: every node's output, small and constant, so joins carry no growing payloads
OUTPUT = {"x": 1}


@wfrunner.handler("bench.noop")
def noop(value: Any, config: dict[str, Any]) -> Any:
    return OUTPUT


@wfrunner.handler("bench.items")
def items(value: Any, config: dict[str, Any]) -> Any:
    """A list of ``config.count`` small items, for a map node to run over."""
    return {"items": [OUTPUT] * int(config["count"])}


@wfrunner.handler("bench.sleep")
def sleep(value: Any, config: dict[str, Any]) -> Any:
    """A node that takes ``config.ms`` milliseconds (sleeping: it uses no CPU), so a run
    lasts long enough for its progress to be flushed to PostgreSQL."""
    time.sleep(int(config["ms"]) / 1000)
    return OUTPUT
