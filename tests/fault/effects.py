"""Exactly-once side effects and replayed event logs: the checks of the fleet tests.

``fault.effect`` (handlers.py) keeps one record per idempotency key (``<key>.effect``),
counts every call (``<key>.calls``) and notes a call that found its token running in
another live process (``overlaps``). Held against the event log in PostgreSQL:

- every node instance that completed (a node's pass, a map node's element) made its
  side effect, under the idempotency key of the token it consumed, and no instance made
  it under two keys (a token emitted twice) nor did an instance that never completed;
- no token ran in two live processes at once;
- with ``once``: every token's handler was called exactly once (no worker died, so
  nothing was redone: a second call is a duplicate delivery the engine let through).

And every run's event log, folded by ``wfrunner.replay``, gives back what PostgreSQL
stores of the run, with no token left pending.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.fault.checks import Report
from tests.fault.handlers import EFFECTS, OVERLAPS
from wfrunner.context import idempotency_key
from wfrunner.engine.tokens import Token
from wfrunner.replay import replay_run
from wfrunner.runtime import Runtime

#: a node instance: (node, "pass", iteration) or (node, "item", index) for a map element
Instance = tuple[str, str, int]


def _instance(node: str, iteration: int, item: int | None) -> Instance:
    return (node, "item", item) if item is not None else (node, "pass", iteration)


def expected_effects(rt: Runtime, run_id: str) -> dict[Instance, str | None]:
    """The node instances of the run that completed, each with the idempotency key its
    side effect must carry (None for a map element: its event names no token)."""
    ir = rt.ir(rt.store.get_run(run_id).workflow_id)
    effect_nodes = {n.id for n in ir.nodes.values() if n.function_name == "fault.effect"}
    mapped = {n for n in effect_nodes if ir.nodes[n].config.get("map_over")}
    expected: dict[Instance, str | None] = {}
    for e in rt.store.list_events(run_id):
        node = str(e.node_id)
        if e.type == "map_item" and node in mapped:
            expected[_instance(node, 1, int(e.data["index"]))] = None
        elif e.type == "node_completed" and node in effect_nodes - mapped:
            token = Token.from_dict(e.data["token"])
            expected[_instance(node, token.iteration, None)] = idempotency_key(run_id, token.key)
    return expected


def check_effects(
    rt: Runtime, run_ids: Iterable[str], markers: Path, report: Report, once: bool = False
) -> None:
    """Hold the side-effect ledger against the event logs (module docstring)."""
    folder = markers / EFFECTS
    made: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in folder.glob("*.effect"):
        record = json.loads(path.read_text())
        made[record["run"]].append(record)
    runs = list(run_ids)
    for run_id in runs:
        _check_run_effects(rt, run_id, made.pop(run_id, []), report)
    for run_id in made:
        report.problems.append(f"side effects made for run {run_id}, not one of the test's")
    calls = {p.name[: -len(".calls")]: p.read_text().count("\n") for p in folder.glob("*.calls")}
    effects = len(list(folder.glob("*.effect")))
    report.extra.update(effects=effects, effect_calls=sum(calls.values()))
    report.extra["effect_calls_redone"] = sum(calls.values()) - len(calls)
    overlaps = folder / OVERLAPS
    if overlaps.exists():
        lines = overlaps.read_text().splitlines()
        report.problems.append(f"{len(lines)} tokens ran in two processes at once: {lines[:3]}")
    if once:
        twice = {k: n for k, n in calls.items() if n > 1}
        if twice:
            report.problems.append(
                f"{len(twice)} tokens' handlers were called more than once with no worker "
                f"killed: {sorted(twice.items())[:3]}"
            )


def _check_run_effects(
    rt: Runtime, run_id: str, records: list[dict[str, Any]], report: Report
) -> None:
    expected = expected_effects(rt, run_id)
    have = Counter(_instance(r["node"], r["iteration"], r["item"]) for r in records)
    keys = {_instance(r["node"], r["iteration"], r["item"]): r["key"] for r in records}
    twice = sorted(i for i, n in have.items() if n > 1)
    if twice:
        report.problems.append(f"{run_id}: side effects made under two keys: {twice[:3]}")
    missing, extra = sorted(set(expected) - set(have)), sorted(set(have) - set(expected))
    if missing or extra:
        report.problems.append(
            f"{run_id}: side effects missing for {missing[:3]}, made for instances that "
            f"did not complete {extra[:3]}"
        )
    wrong = sorted(i for i, k in expected.items() if k is not None and i in keys and keys[i] != k)
    if wrong:
        report.problems.append(f"{run_id}: side effects under another token's key: {wrong[:3]}")


def check_replays(rt: Runtime, run_ids: Iterable[str], report: Report) -> None:
    """Each run's event log replays to what PostgreSQL stores, no token left pending."""
    replayed = 0
    for run_id in run_ids:
        found = replay_run(run_id, rt)
        replayed += 1
        if not found.identical:
            report.problems.append(f"{run_id}: replay differs: {found.lines()[1:4]}")
        if found.state.pending:
            left = sorted(t.to_node for t in found.state.pending.values())
            report.problems.append(f"{run_id}: tokens left pending: {left}")
    report.extra["replayed"] = replayed


#: republish causes that a republish mark holds back (the others: a lease expired, a
#: retry or an approval came due, which are due at once whatever was published before)
_HELD_BACK = ("lost_message", "republish_lost")


def check_republishes(rt: Runtime, run_ids: Iterable[str], hold: float, report: Report) -> None:
    """No token was republished by the reconciler twice within ``hold`` s (its mark,
    WFRUNNER_VISIBILITY_TIMEOUT) for a lost or queued message: two reconciler passes at
    once (two beats, or a slow pass) publish it once."""
    count = 0
    for run_id in run_ids:
        last: dict[tuple[str, str, str], float] = {}
        for e in rt.store.list_events(run_id):
            if e.type != "reconciler_repaired" or e.data.get("repair") != "republished":
                continue
            for token in e.data.get("tokens", []):
                count += 1
                name = (str(token.get("from")), str(token["node"]), str(token.get("scope")))
                at = float(e.data["t"])
                if token["cause"] in _HELD_BACK and at - last.get(name, -hold) < hold - 0.5:
                    report.problems.append(
                        f"{run_id}: token {name} republished twice {at - last[name]:.2f} s apart"
                    )
                last[name] = at
    report.extra["tokens_republished"] = count
