"""The intermediate representation the engine executes (docs/dsl.md, "The IR").

The IR is what a worker needs at a node without looking at the rest of the graph:
who it waits for (``dependencies``, ``wait_for_all``), who it always emits to
(``dependents``), who it may emit to (``branch``, ``loop``), and whether it has no
successor (``is_terminal``, reported by the CLI; completion is asked for by the commit
that takes the run's counter to 0, whichever node makes it).
It is stored as JSON beside the definition and read back with :meth:`IR.from_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IR_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_ms: int = 1000
    backoff_multiplier: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_ms": self.backoff_ms,
            "backoff_multiplier": self.backoff_multiplier,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(data.get("max_attempts", 3)),
            backoff_ms=int(data.get("backoff_ms", 1000)),
            backoff_multiplier=float(data.get("backoff_multiplier", 2.0)),
        )


@dataclass(frozen=True)
class BranchRule:
    condition: str
    next_nodes: tuple[str, ...]


@dataclass(frozen=True)
class Branch:
    """Conditional edges of one node, one rule per edge in edge order.

    Every rule whose condition holds is taken (docs/dsl.md, "Branches"); ``default`` is taken only
    when none holds.
    """

    rules: tuple[BranchRule, ...]
    default: tuple[str, ...] = ()

    def targets(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            seen.update(dict.fromkeys(rule.next_nodes))
        seen.update(dict.fromkeys(self.default))
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": [
                {"condition": r.condition, "next_nodes": list(r.next_nodes)} for r in self.rules
            ],
            "default": list(self.default),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Branch:
        rules = tuple(
            BranchRule(condition=r["condition"], next_nodes=tuple(r["next_nodes"]))
            for r in data.get("rules", [])
        )
        return cls(rules=rules, default=tuple(data.get("default", [])))


@dataclass(frozen=True)
class Loop:
    """A loop node: ``condition`` true means go round again via ``loop_back_to``."""

    max_iterations: int
    loop_back_to: str
    condition: str
    break_path: tuple[str, ...] = ()
    timeout_path: tuple[str, ...] = ()

    def exits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.break_path + self.timeout_path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_iterations": self.max_iterations,
            "loop_back_to": self.loop_back_to,
            "condition": self.condition,
            "break_path": list(self.break_path),
            "timeout_path": list(self.timeout_path),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Loop:
        return cls(
            max_iterations=int(data["max_iterations"]),
            loop_back_to=data["loop_back_to"],
            condition=data["condition"],
            break_path=tuple(data.get("break_path", [])),
            timeout_path=tuple(data.get("timeout_path", [])),
        )


@dataclass(frozen=True)
class JoinRule:
    """When a join fires (docs/dsl.md, "Join rules"); a join without one waits for all.

    ``need``: the live arrivals that fire it (``any``: 1, ``at_least``: k), 0 for a
    ``condition`` (decided by the predicate on each arrival). ``rest``: what becomes of
    the inputs that arrive after it fired ("ignore" or "cancel")."""

    kind: str
    need: int = 0
    condition: str | None = None
    rest: str = "ignore"
    #: with rest "cancel": the nodes whose every path leads only into this join (its
    #: feeders), cut short once it fired
    cut: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        rule: Any = self.kind
        if self.kind == "at_least":
            rule = {"at_least": self.need}
        elif self.kind == "condition":
            rule = {"condition": self.condition}
        data: dict[str, Any] = {"rule": rule, "need": self.need, "rest": self.rest}
        if self.rest == "cancel":
            data["cut"] = list(self.cut)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JoinRule:
        rule = data["rule"]
        kind = rule if isinstance(rule, str) else next(iter(rule))
        condition = rule.get("condition") if isinstance(rule, dict) else None
        rest = str(data.get("rest", "ignore"))
        return cls(kind, int(data.get("need", 0)), condition, rest, tuple(data.get("cut", ())))


@dataclass(frozen=True)
class IRNode:
    id: str
    type: str
    dependencies: tuple[str, ...] = ()
    dependents: tuple[str, ...] = ()
    is_terminal: bool = False
    wait_for_all: bool = False
    branch: Branch | None = None
    loop: Loop | None = None
    config: dict[str, Any] = field(default_factory=dict)
    timeout_ms: int | None = None
    retry: RetryPolicy | None = None
    #: the node that takes over when this one fails for good (docs/failures.md)
    on_error: str | None = None
    #: a join's rule; None: it waits for every predecessor (the default, "all")
    join: JoinRule | None = None

    @property
    def function_name(self) -> str | None:
        name = self.config.get("function_name")
        return name if isinstance(name, str) and name else None

    @property
    def successors(self) -> tuple[str, ...]:
        """Every node this one can emit a forward token to (not loop-backs)."""
        out = dict.fromkeys(self.dependents)
        if self.branch:
            out.update(dict.fromkeys(self.branch.targets()))
        if self.loop:
            out.update(dict.fromkeys(self.loop.exits()))
        if self.on_error:
            out[self.on_error] = None
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "dependencies": list(self.dependencies),
            "dependents": list(self.dependents),
            "successors": list(self.successors),
            "is_terminal": self.is_terminal,
            "wait_for_all": self.wait_for_all,
            "config": self.config,
        }
        if self.branch is not None:
            data["branch"] = self.branch.to_dict()
        if self.loop is not None:
            data["loop"] = self.loop.to_dict()
        if self.timeout_ms is not None:
            data["timeout_ms"] = self.timeout_ms
        if self.retry is not None:
            data["retry"] = self.retry.to_dict()
        if self.on_error is not None:
            data["on_error"] = self.on_error
        if self.join is not None:
            data["join"] = self.join.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IRNode:
        return cls(
            id=data["id"],
            type=data["type"],
            dependencies=tuple(data.get("dependencies", [])),
            dependents=tuple(data.get("dependents", [])),
            is_terminal=bool(data.get("is_terminal", False)),
            wait_for_all=bool(data.get("wait_for_all", False)),
            branch=Branch.from_dict(data["branch"]) if data.get("branch") else None,
            loop=Loop.from_dict(data["loop"]) if data.get("loop") else None,
            config=dict(data.get("config") or {}),
            timeout_ms=data.get("timeout_ms"),
            retry=RetryPolicy.from_dict(data["retry"]) if data.get("retry") else None,
            on_error=data.get("on_error") or None,
            join=JoinRule.from_dict(data["join"]) if data.get("join") else None,
        )


@dataclass(frozen=True)
class IR:
    nodes: dict[str, IRNode]
    entry_nodes: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the handler called once when a run ends FAILED (the workflow's ``on_failure``)
    on_failure: str | None = None
    #: ``concurrency.max_runs``: runs of the workflow's name that may run at once (None:
    #: no limit, and no slot is taken; see wfrunner/runlimits.py)
    max_runs: int | None = None

    def node(self, node_id: str) -> IRNode:
        return self.nodes[node_id]

    def terminal_nodes(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.nodes.values() if n.is_terminal)

    def terminal_count(self) -> int:
        return sum(1 for n in self.nodes.values() if n.is_terminal)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": IR_FORMAT_VERSION,
            "metadata": self.metadata,
            "entry_nodes": list(self.entry_nodes),
            "terminal_nodes": list(self.terminal_nodes()),
            "nodes": {node_id: node.to_dict() for node_id, node in self.nodes.items()},
            **({"on_failure": {"function_name": self.on_failure}} if self.on_failure else {}),
            **({"concurrency": {"max_runs": self.max_runs}} if self.max_runs else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IR:
        nodes = {node_id: IRNode.from_dict(raw) for node_id, raw in data["nodes"].items()}
        return cls(
            nodes=nodes,
            entry_nodes=tuple(data["entry_nodes"]),
            metadata=dict(data.get("metadata") or {}),
            on_failure=(data.get("on_failure") or {}).get("function_name") or None,
            max_runs=(data.get("concurrency") or {}).get("max_runs"),
        )
