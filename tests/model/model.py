"""The reference semantics of a workflow run, in plain Python (docs/dsl.md).

A sequential interpreter over the compiled IR, with no Redis, no PostgreSQL, no counter
and no faults: what a run of a workflow *should* end as, given its inputs. The stateful
test (``test_stateful.py``) drives the real engine through duplicates, redeliveries, lost
publishes and a wiped Redis, and compares its end with this.

Node behaviour is restricted to what the generated workflows use (``strategies.py``):
``transform`` (CEL ``config.expression``), ``aggregate`` with ``strategy: concat`` and
``loop`` nodes without a handler (they pass their input through). CEL is evaluated with
:func:`wfrunner.conditions.evaluate` — the model reimplements routing, joins, dead paths
and loop scopes, never the engine's code for them.

Semantics (docs/dsl.md):

* an entry node gets the run's inputs; a node with one predecessor that predecessor's
  output; a join ``{pred: output}`` of its *live* predecessors (in dependency order); a
  loop-back token the loop node's output;
* after a node, every unconditional edge is taken and every conditional edge whose
  condition holds; the other successors are dead;
* a dead path skips plain nodes and records a dead arrival at a join; a join whose
  inputs have all arrived runs once with the live ones, or is skipped when all are dead;
* a join with a rule (``join``: ``at_least`` or a ``condition`` over ``arrived``,
  ``count``, ``dead``, ``expected``) runs once, on the first arrival after which its rule
  holds with a live input in, with the live ones in then; it is skipped when every input
  arrived and the rule never held (the generated rules only hold once every input is in,
  so the end does not depend on arrival order);
* a loop node: ``condition`` true and pass < ``max_iterations`` → go back to
  ``loop_back_to`` in the next pass; else ``break_path`` (condition false) or
  ``timeout_path`` (condition still true at the limit), the other exits being dead.
  Every pass is its own scope: a join inside a pass only matches tokens of that pass.

Since nodes are deterministic, the end of a run does not depend on the order tokens are
processed in, except for which dead arrival fires a join (see ``Expected.fire_edges``).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from wfrunner import conditions
from wfrunner.compiler.ir import IR, IRNode

#: a dead arrival at a join
DEAD = object()

#: loop passes a token is in: ((loop_id, pass), ...), outermost first; () outside loops
Scope = tuple[tuple[str, int], ...]


def _pass_of(scope: Scope, loop_id: str) -> int:
    return dict(scope).get(loop_id, 1)


def _innermost(scope: Scope) -> int:
    return scope[-1][1] if scope else 1


def _outside(scope: Scope, loop_id: str) -> Scope:
    for index, (name, _) in enumerate(scope):
        if name == loop_id:
            return scope[:index]
    return scope


def _next_pass(scope: Scope, loop_id: str) -> Scope:
    return (*_outside(scope, loop_id), (loop_id, _pass_of(scope, loop_id) + 1))


@dataclass
class Expected:
    """What a run must end as."""

    #: COMPLETED or FAILED
    status: str
    #: node -> COMPLETED | SKIPPED | FAILED (only the failed node is known when FAILED)
    node_status: dict[str, str]
    #: node -> completed passes (when FAILED: at most that many)
    iterations: dict[str, int]
    #: node -> output of its latest pass (nodes that completed)
    outputs: dict[str, Any]
    #: (from, to) of every token a completed node (or the start) emitted
    path: Counter[tuple[str | None, str]]
    #: (join, scope) -> its dead predecessors, for joins that ran with some dead inputs:
    #: the engine emits one token firing such a join when its last arrival happens to be
    #: dead, from that dead predecessor; which one (or none) depends on delivery order
    fire_edges: dict[tuple[str, Scope], set[str]] = field(default_factory=dict)
    error: str | None = None
    failed_node: str | None = None
    #: node -> the output of each pass it completed (when FAILED: of those that may run
    #: before the failure stops the run)
    outputs_seen: dict[str, list[Any]] = field(default_factory=dict)


class ModelError(Exception):
    """A node of the model failed (a CEL error)."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"node {node!r}: {reason}")
        self.node = node


class _Run:
    def __init__(self, ir: IR, inputs: Any, max_steps: int = 10_000) -> None:
        self.ir = ir
        self.inputs = inputs
        self.max_steps = max_steps
        #: ("token", from, to, scope, value) | ("fire", join, scope, input)
        self.work: deque[tuple[Any, ...]] = deque()
        self.joins: dict[tuple[str, Scope], dict[str, Any]] = {}
        self.completed: Counter[str] = Counter()
        self.outputs: dict[str, Any] = {}
        self.skipped: set[tuple[str, Scope]] = set()
        self.path: Counter[tuple[str | None, str]] = Counter()
        self.fire_edges: dict[tuple[str, Scope], set[str]] = {}
        self.outputs_seen: dict[str, list[Any]] = {}
        #: joins with a rule that fired
        self.fired: set[tuple[str, Scope]] = set()

    # --- driving ---------------------------------------------------------------------

    def run(self) -> Expected:
        for entry in self.ir.entry_nodes:
            self.path[(None, entry)] += 1
            self.work.append(("token", None, entry, (), self.inputs))
        steps = 0
        failure: ModelError | None = None
        while self.work:
            steps += 1
            if steps > self.max_steps:
                raise RuntimeError("model: run does not end")
            item = self.work.popleft()
            try:
                if item[0] == "fire":
                    _, join, scope, node_input = item
                    self._execute(self.ir.nodes[join], scope, node_input)
                else:
                    _, src, dst, scope, value = item
                    self._token(src, dst, scope, value)
            except ModelError as exc:
                # the run fails here; the rest is worked through anyway, to know what
                # may have run before the failure stopped the run (delivery order decides)
                failure = failure or exc
        if failure is not None:
            return Expected(
                status="FAILED",
                node_status={failure.node: "FAILED"},
                iterations=dict(self.completed),
                outputs={},
                path=self.path,
                error=str(failure),
                failed_node=failure.node,
                fire_edges=self.fire_edges,
                outputs_seen=self.outputs_seen,
            )
        waiting = [
            (node, scope)
            for (node, scope), arrived in self.joins.items()
            if len(arrived) < len(self.ir.nodes[node].dependencies)
        ]
        status = "FAILED" if waiting else "COMPLETED"
        return Expected(
            status=status,
            node_status={n: "COMPLETED" if self.completed[n] else "SKIPPED" for n in self.ir.nodes},
            iterations={n: self.completed[n] for n in self.ir.nodes},
            outputs=dict(self.outputs),
            path=self.path,
            fire_edges=self.fire_edges,
            error=f"join {waiting[0][0]!r} left waiting" if waiting else None,
        )

    def _token(self, src: str | None, dst: str, scope: Scope, value: Any) -> None:
        node = self.ir.nodes[dst]
        if node.wait_for_all and src in node.dependencies:
            self._arrive(node, scope, src, value)
        else:
            self._execute(node, scope, value)

    def _arrive(self, node: IRNode, scope: Scope, src: str, value: Any) -> None:
        arrived = self.joins.setdefault((node.id, scope), {})
        assert src not in arrived, f"model: second arrival {src}->{node.id} in {scope}"
        arrived[src] = value
        if node.join is not None:
            self._arrive_ruled(node, scope, arrived)
            return
        if len(arrived) < len(node.dependencies):
            return
        live = {p: arrived[p] for p in node.dependencies if arrived[p] is not DEAD}
        if live:
            dead = {p for p in node.dependencies if arrived[p] is DEAD}
            if dead:
                self.fire_edges[(node.id, scope)] = dead
            self.work.append(("fire", node.id, scope, live))
        else:
            self._skip(node, scope)

    def _arrive_ruled(self, node: IRNode, scope: Scope, arrived: dict[str, Any]) -> None:
        if (node.id, scope) in self.fired:
            return  # a late arrival: dropped
        live = {p: arrived[p] for p in node.dependencies if p in arrived and arrived[p] is not DEAD}
        dead = {p for p, v in arrived.items() if v is DEAD}
        if live and self._rule_holds(node, live, len(dead)):
            self.fired.add((node.id, scope))
            if dead:
                self.fire_edges[(node.id, scope)] = dead
            self.work.append(("fire", node.id, scope, live))
        elif len(arrived) == len(node.dependencies):
            self._skip(node, scope)

    def _rule_holds(self, node: IRNode, live: dict[str, Any], dead: int) -> bool:
        rule = node.join
        assert rule is not None
        if rule.kind == "condition":
            variables = {
                "arrived": live,
                "count": len(live),
                "dead": dead,
                "expected": len(node.dependencies),
            }
            return self._holds(node.id, str(rule.condition), variables)
        return len(live) >= rule.need

    # --- one node --------------------------------------------------------------------

    def _execute(self, node: IRNode, scope: Scope, node_input: Any) -> None:
        variables: dict[str, Any] = {
            "input": node_input,
            "inputs": self.inputs,
            "iteration": _pass_of(scope, node.id) if node.loop else _innermost(scope),
            "ctx": {},
        }
        output = self._behave(node, node_input, variables)
        variables["output"] = output
        live, dead = self._route(node, scope, variables)  # a routing error fails the node
        self.completed[node.id] += 1
        self.outputs[node.id] = output
        self.outputs_seen.setdefault(node.id, []).append(output)
        for target, target_scope in live:
            self.path[(node.id, target)] += 1
            self.work.append(("token", node.id, target, target_scope, output))
        for target, target_scope in dead:
            self._dead(node.id, target, target_scope)

    def _behave(self, node: IRNode, node_input: Any, variables: dict[str, Any]) -> Any:
        config = node.config
        if node.type == "transform":
            return self._cel(node.id, config["expression"], variables)
        if node.type == "aggregate":
            assert config.get("strategy") == "concat", config
            if isinstance(node_input, dict):  # a join's {pred: output}
                result: list[Any] = []
                for pred, value in node_input.items():
                    if not isinstance(value, list):
                        raise ModelError(node.id, f"output of {pred!r} is not a list")
                    result.extend(value)
                return result
            if isinstance(node_input, list):
                return node_input
            raise ModelError(node.id, "concat needs a list or a join of lists")
        if node.type in ("loop", "conditional", "parallel"):
            return node_input
        raise AssertionError(f"model: node type {node.type!r} is not modelled")

    def _cel(self, node_id: str, expression: str, variables: dict[str, Any]) -> Any:
        try:
            return conditions.evaluate(expression, variables)
        except Exception as exc:  # a CEL error fails the node
            raise ModelError(node_id, str(exc)) from None

    def _holds(self, node_id: str, expression: str, variables: dict[str, Any]) -> bool:
        value = self._cel(node_id, expression, variables)
        if not isinstance(value, bool):
            raise ModelError(node_id, f"condition {expression!r} gave {value!r}")
        return value

    def _route(
        self, node: IRNode, scope: Scope, variables: dict[str, Any]
    ) -> tuple[list[tuple[str, Scope]], list[tuple[str, Scope]]]:
        loop = node.loop
        if loop is not None:
            number = _pass_of(scope, node.id)
            again = self._holds(node.id, loop.condition, {**variables, "iteration": number})
            if again and number < loop.max_iterations:
                self.path[(node.id, loop.loop_back_to)] += 1
                self.work.append(
                    (
                        "token",
                        node.id,
                        loop.loop_back_to,
                        _next_pass(scope, node.id),
                        variables["output"],
                    )
                )
                return [], []
            outside = _outside(scope, node.id)
            taken = list(dict.fromkeys(loop.timeout_path if again else loop.break_path))
            dead = [t for t in dict.fromkeys(loop.break_path + loop.timeout_path) if t not in taken]
            return [(t, outside) for t in taken], [(t, outside) for t in dead]
        live = list(node.dependents)
        if node.branch is not None:
            held = [
                target
                for rule in node.branch.rules
                if self._holds(node.id, rule.condition, variables)
                for target in rule.next_nodes
            ]
            live += held or list(node.branch.default)
        live = list(dict.fromkeys(live))
        dead = [s for s in node.successors if s not in live]
        return [(t, scope) for t in live], [(t, scope) for t in dead]

    # --- dead paths ------------------------------------------------------------------

    def _dead(self, src: str, target: str, scope: Scope) -> None:
        node = self.ir.nodes[target]
        if node.wait_for_all and src in node.dependencies:
            self._arrive(node, scope, src, DEAD)
        else:
            self._skip(node, scope)

    def _skip(self, node: IRNode, scope: Scope) -> None:
        if (node.id, scope) in self.skipped:
            return
        self.skipped.add((node.id, scope))
        if node.loop is not None:  # a dead loop exits (dead) through all its exits
            outside = _outside(scope, node.id)
            for target in dict.fromkeys(node.loop.break_path + node.loop.timeout_path):
                self._dead(node.id, target, outside)
        else:
            for target in node.successors:
                self._dead(node.id, target, scope)


def run_model(ir: IR, inputs: Any) -> Expected:
    """The expected end of a run of ``ir`` with ``inputs``."""
    return _Run(ir, inputs).run()
