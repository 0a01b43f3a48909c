"""Typed views of the run document (docs/run-document.md) that stay the plain JSON dicts
they always were.

``get_run`` and ``wait_for_run`` returned a ``dict``, and callers index it, compare it
with dict literals and ``json.dumps`` it: a dataclass would break all three. So each
document is a ``dict`` subclass holding exactly the JSON fields, with read-only typed
properties over them (``doc.status`` is a :class:`RunStatus`, ``doc.nodes["A"].output``);
:meth:`RunDocument.to_dict` gives a plain ``dict`` for code that checks ``type(x) is dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from wfrunner.states import NodeStatus, RunStatus


def _plain(value: Any) -> Any:
    """``value`` with every dict (subclass) a plain dict, recursively."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


class NodeDocument(dict[str, Any]):
    """One node of a run document: ``doc.nodes["A"]``."""

    @property
    def status(self) -> NodeStatus:
        return NodeStatus(self["status"])

    @property
    def attempts(self) -> int:
        """Deliveries that ran it (retries and redeliveries included)."""
        return int(self["attempts"])

    @property
    def iterations(self) -> int:
        """Passes completed (more than 1 in a loop)."""
        return int(self["iterations"])

    @property
    def output(self) -> Any:
        """The output of its latest pass (None until there is one)."""
        return self["output"]

    @property
    def seconds(self) -> float | None:
        """How long its attempts ran, summed (None until one ended)."""
        value = self.get("seconds")
        return None if value is None else float(value)

    @property
    def error(self) -> str | None:
        """Why it failed (only on a FAILED node)."""
        return self.get("error")

    @property
    def traceback(self) -> str | None:
        """The traceback of its handler's exception (only on a FAILED node)."""
        return self.get("traceback")

    @property
    def caught(self) -> bool:
        """Whether its failure was caught by its ``on_error`` node (the run went on)."""
        return bool(self.get("caught"))

    @property
    def child_run_id(self) -> str | None:
        """A subworkflow node's child run."""
        return self.get("child_run_id")

    @property
    def map_items(self) -> dict[str, int] | None:
        """A map node's ``items``, ``{"total": n, "done": d}`` (None on other nodes; not
        ``items``, which is the dict's own method)."""
        return self.get("items")


class PathStep(dict[str, Any]):
    """One token of the run's path: ``{"from": node or None, "to": node}``."""

    @property
    def from_node(self) -> str | None:
        """The node that emitted the token; None for an entry token."""
        source = self["from"]
        return None if source is None else str(source)

    @property
    def to_node(self) -> str:
        return str(self["to"])


class RunStats(dict[str, Any]):
    """The run document's counts."""

    @property
    def completion_checks(self) -> int:
        """Completion checks the run took (0 until it ended)."""
        return int(self.get("completion_checks", 0))

    @property
    def nodes_executed(self) -> int:
        return int(self["nodes_executed"])

    @property
    def nodes_skipped(self) -> int:
        return int(self["nodes_skipped"])

    @property
    def tokens_emitted(self) -> int:
        return int(self["tokens_emitted"])

    @property
    def tokens_consumed(self) -> int:
        return int(self["tokens_consumed"])


class RunDocument(dict[str, Any]):
    """Everything known about one run (docs/run-document.md), as a dict and typed."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        if isinstance(self.get("nodes"), dict):
            self["nodes"] = {k: NodeDocument(v) for k, v in self["nodes"].items()}
        if isinstance(self.get("path"), list):
            self["path"] = [PathStep(step) for step in self["path"]]
        if isinstance(self.get("stats"), dict):
            self["stats"] = RunStats(self["stats"])

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy (nested documents plain too)."""
        return cast(dict[str, Any], _plain(self))

    @property
    def run_id(self) -> str:
        return str(self["run_id"])

    @property
    def workflow_id(self) -> str:
        return str(self["workflow_id"])

    @property
    def workflow_name(self) -> str:
        """The name the workflow was registered under."""
        return str(self.get("workflow_name", ""))

    @property
    def workflow_version(self) -> int:
        """Which version of that name the run was pinned to when it started."""
        return int(self.get("workflow_version", 0))

    @property
    def status(self) -> RunStatus:
        return RunStatus(self["status"])

    @property
    def error(self) -> str | None:
        """Why the run failed, naming the node (None unless it did)."""
        return self.get("error")

    @property
    def inputs(self) -> Any:
        return self.get("inputs")

    @property
    def nodes(self) -> dict[str, NodeDocument]:
        return cast(dict[str, NodeDocument], self["nodes"])

    @property
    def path(self) -> list[PathStep]:
        """Every token in emission order (loop-backs included, dead paths not)."""
        return cast(list[PathStep], self["path"])

    @property
    def stats(self) -> RunStats:
        return cast(RunStats, self["stats"])

    @property
    def output(self) -> Any:
        """The run's result: the output of the node its last token went to, once the run
        COMPLETED (what ``wfrunner run --wait`` prints); None otherwise. A workflow with
        several terminal nodes has one per node: read ``nodes[...].output``."""
        if self.status is not RunStatus.COMPLETED or not self.path:
            return None
        return self.nodes[self.path[-1].to_node].output

    @property
    def parent(self) -> dict[str, str] | None:
        """A child run's parent: ``{"run_id", "node"}`` (None for a top-level run)."""
        return self.get("parent")

    @property
    def failure_handler(self) -> dict[str, Any] | None:
        """What the workflow's on_failure handler did (``handler``, ``status`` "ran" or
        "failed", ``output`` or ``error``), once it ran."""
        return self.get("failure_handler")

    @property
    def attempt(self) -> int:
        """1, plus one per ``wfrunner rerun`` of the run."""
        return int(self.get("attempt", 1))

    @property
    def redrives(self) -> list[dict[str, Any]]:
        """Each rerun, oldest first: attempt, from, by, reason, ended, error, t."""
        return cast(list[dict[str, Any]], self.get("redrives") or [])

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(str(self["created_at"]))

    @property
    def started_at(self) -> datetime | None:
        return _time(self.get("started_at"))

    @property
    def completed_at(self) -> datetime | None:
        return _time(self.get("completed_at"))


__all__ = ["NodeDocument", "PathStep", "RunDocument", "RunStats"]
