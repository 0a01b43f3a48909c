"""The joins with a rule that one commit touches: read once, then judged arrival by arrival.

The executor decides here what an arrival does at a join with a rule when Lua cannot (a
condition, or an arrival that completes a join without firing it): from the arrivals
read plus those this same commit adds before it, in the order the commit lists them, so
the ``observed`` count each decision carries is what lua/commit_node.lua will find.
"""

from __future__ import annotations

import json
from typing import Any

from wfrunner.compiler.ir import IRNode
from wfrunner.engine import joinrules
from wfrunner.engine.runstate import DEAD, RunState


class JoinView:
    def __init__(self, state: RunState, run_id: str, known: tuple[str, str] | None = None) -> None:
        self.state = state
        self.run_id = run_id
        #: the committing node's own output (ref, JSON text), not stored yet: read only
        #: should a condition need it
        self.known = known
        self.values: dict[str, Any] = {}
        self.arrived: dict[str, dict[str, str]] = {}
        self.fired: set[str] = set()

    def read(self, join: IRNode, instance: str) -> dict[str, str]:
        """predecessor -> payload ref or DEAD, as read (once) plus what was judged since."""
        if instance not in self.arrived:
            fields = self.state.join_fields(self.run_id, instance, join.dependencies)
            self.arrived[instance] = dict(fields.arrived)
            if fields.finisher:
                self.fired.add(instance)
        return self.arrived[instance]

    def judge(self, join: IRNode, instance: str, source: str, value: str) -> tuple[str, int]:
        """The verdict (joinrules) of ``source``'s arrival (a payload ref or DEAD), and the
        arrivals there before it; the arrival counts from now on."""
        assert join.join is not None
        arrived = self.read(join, instance)
        observed = len(arrived)
        arrived[source] = value
        live = {p: r for p, r in arrived.items() if r != DEAD}
        outputs: dict[str, Any] = live
        if join.join.kind == "condition":
            missing = [r for r in live.values() if r not in self.values]
            if self.known is not None and self.known[0] in missing:
                self.values[self.known[0]] = json.loads(self.known[1])
                missing.remove(self.known[0])
            self.values.update(self.state.payloads(self.run_id, missing))
            outputs = {p: self.values.get(r) for p, r in live.items()}
        verdict = joinrules.verdict(
            join.join,
            join.id,
            outputs,
            len(arrived) - len(live),
            len(join.dependencies),
            instance in self.fired,
        )
        if verdict == joinrules.FIRE:
            self.fired.add(instance)
        return verdict, observed

    def live_count(self, instance: str) -> int:
        return sum(1 for r in self.arrived.get(instance, {}).values() if r != DEAD)
