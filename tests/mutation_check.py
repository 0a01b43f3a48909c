"""Plant known bugs in the engine one at a time and report which tests catch each.

A test suite that passes whatever the code does protects nothing. This script copies the
repository (the files git tracks, plus uncommitted changes) into a scratch folder, applies
one planted bug (a text substitution in ``lua/`` or ``wfrunner/``), runs the chosen test
tiers there with pytest, and records which tests failed. The report is Markdown, one
section per mutation; a mutation that no tier catches is a hole in the suite.

Run it from the repository root (it needs the test servers, like the tests do)::

    python -m tests.mutation_check                      # fast tiers + model, every mutation
    python -m tests.mutation_check --tiers fast         # unit + integration only
    python -m tests.mutation_check --only join_fires_early --report -
    python -m tests.mutation_check --report docs/mutation-report.md

It is not part of CI's default run: each mutation runs the fast tiers (about a minute) and
a shortened model test (``WFRUNNER_MODEL_EXAMPLES``, 150 by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    what: str


MUTATIONS = [
    Mutation(
        "commit_dedup_never_matches",
        "lua/commit_node.lua",
        'if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 1 then',
        'if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 2 then',
        "commit_node.lua: the SISMEMBER dedup never matches (a second delivery commits again)",
    ),
    Mutation(
        "every_branch_taken",
        "wfrunner/engine/routing.py",
        "live += held or list(node.branch.default)",
        "live += list(node.branch.targets())",
        "routing.py: every branch (and the default) is taken, whatever the conditions say",
    ),
    Mutation(
        "join_fires_early",
        "lua/commit_node.lua",
        'if before + 1 >= tonumber(a["expected"]) then\n'
        "            fins[#fins + 1] = a\n        else",
        "if true then\n            fins[#fins + 1] = a\n        else",
        "commit_node.lua: a join fires on its first (live) arrival",
    ),
    Mutation(
        "idle_runs_never_fail",
        "wfrunner/lifecycle.py",
        "for run_id in rt.store.find_idle_runs(timeout):",
        "for run_id in rt.store.find_idle_runs(timeout)[:0]:",
        "lifecycle.expire_idle_runs never fails a run",
    ),
    Mutation(
        "loop_boundary_off_by_one",
        "wfrunner/engine/routing.py",
        "if again and number < loop.max_iterations:",
        "if again and number <= loop.max_iterations:",
        "routing.py: a loop runs max_iterations + 1 passes (number <= max_iterations)",
    ),
    Mutation(
        "counter_may_go_negative",
        "lua/commit_node.lua",
        "if current + delta < 0 then",
        "if current + delta < -1000000 then",
        "commit_node.lua: the counter may go below zero",
    ),
    Mutation(
        "ended_run_accepts_commits",
        "lua/commit_node.lua",
        'if state ~= "running" then\n    return {-1, 0, 0, "", state or "gone", 0, 0, {}}',
        'if state == nil then\n    return {-1, 0, 0, "", state or "gone", 0, 0, {}}',
        "commit_node.lua: a failed or cancelled run still accepts commits",
    ),
    Mutation(
        "committed_token_runs_again",
        "lua/begin_node.lua",
        'local committed = redis.call("HGET", KEYS[2], ARGV[1])\nif committed then',
        'local committed = redis.call("HGET", KEYS[2], ARGV[1])\nif false then',
        "begin_node.lua: a token already committed is run again on redelivery",
    ),
    Mutation(
        "dead_paths_not_propagated",
        "wfrunner/engine/executor.py",
        "fires, skipped, arrivals = self._propagate_dead(\n"
        "                    ir, token, node.id, not_taken, live, careful, output\n"
        "                )",
        "fires, skipped, arrivals = [], [], list(live)",
        "executor.py: paths not taken are not propagated (a join after a branch waits forever)",
    ),
    Mutation(
        "forged_token_runs",
        "lua/begin_node.lua",
        'if redis.call("HEXISTS", KEYS[7], ARGV[1]) == 0 then',
        "if false then",
        "begin_node.lua: a token neither committed nor pending (forged, or emitted after a "
        "restored snapshot) runs its node",
    ),
    Mutation(
        "live_lease_ignored",
        "lua/begin_node.lua",
        "if delivery and tonumber(till) and tonumber(till) > now then",
        "if false then",
        "begin_node.lua: a second delivery runs the node beside a live lease",
    ),
    Mutation(
        "stale_epoch_commits",
        "lua/commit_node.lua",
        'if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[12] then',
        "if false then",
        "commit_node.lua: a delivery begun before a rebuild commits into the rebuilt state",
    ),
    Mutation(
        "fence_ignores_generation",
        "wfrunner/store/history.py",
        ".where(Run.id == run_id, Run.status.in_(active), Run.hot_gen == gen)",
        ".where(Run.id == run_id, Run.status.in_(active))",
        "history.py: PostgreSQL accepts a flush from stale (restored) hot state",
    ),
    Mutation(
        "end_fence_ignores_generation",
        "sql/end_run.sql",
        "WHERE id = :run_id AND status = ANY(:active) AND hot_gen = :gen",
        "WHERE id = :run_id AND status = ANY(:active)",
        "end_run.sql: PostgreSQL records a run's end from stale (restored) hot state",
    ),
    Mutation(
        "approval_decided_twice",
        "lua/decide_approval.lua",
        'if redis.call("HSETNX", KEYS[2], ARGV[1] .. "#d", ARGV[2]) == 0 then',
        'if redis.call("HSET", KEYS[2], ARGV[1] .. "#d", ARGV[2]) == -1 then',
        "decide_approval.lua: a second decision overwrites the first (two approvers both win)",
    ),
    Mutation(
        "approval_held_as_a_lease",
        "lua/begin_node.lua",
        'and holder ~= "republished" and holder ~= "approval"',
        'and holder ~= "republished"',
        "begin_node.lua: a waiting approval counts as another delivery's lease (a redelivered "
        "token is put off until the approval's deadline)",
    ),
    Mutation(
        "approval_never_times_out",
        "wfrunner/engine/human.py",
        'if req.get("deadline") is None or now < float(req["deadline"]):',
        "if True:",
        "human.py: an approval past its deadline keeps waiting",
    ),
    Mutation(
        "approval_request_repeated",
        "lua/request_approval.lua",
        'if redis.call("HSETNX", KEYS[2], ARGV[1], ARGV[2]) == 1 then',
        'if redis.call("HSET", KEYS[2], ARGV[1], ARGV[2]) >= 0 then',
        "request_approval.lua: every delivery of a waiting token asks again (events, count)",
    ),
    Mutation(
        "caught_failure_not_routed",
        "wfrunner/engine/routing.py",
        "dead = [s for s in node.successors if s != node.on_error]",
        "dead: list[str] = []",
        "routing.py: a caught failure leaves the node's other successors live (a join waits)",
    ),
    Mutation(
        "on_error_ignored",
        "wfrunner/engine/executor.py",
        "if node.on_error and catch is not None:",
        "if False:",
        "executor.py: a node's on_error never catches its failure (the run fails)",
    ),
    Mutation(
        "second_child_run",
        "wfrunner/engine/subflow.py",
        'return uuid.uuid5(_NAMESPACE, f"{token.run_id}/{token.key}").hex',
        "return uuid.uuid4().hex",
        "subflow.py: a redelivered subworkflow token starts a second child run",
    ),
    Mutation(
        "paused_run_commits_refused",
        "lua/commit_node.lua",
        'if state ~= "running" and state ~= "paused" then',
        'if state ~= "running" then',
        "commit_node.lua: a node begun before a pause cannot commit (its work is lost)",
    ),
    Mutation(
        "map_head_emits_every_item",
        "wfrunner/engine/mapping.py",
        "return list(range(min(total, cap)))",
        "return list(range(total))",
        "mapping.py: a map's head emits every element at once (max_concurrency ignored)",
    ),
    Mutation(
        "run_slot_not_handed_on",
        "lua/release_run.lua",
        'while redis.call("SCARD", KEYS[1]) < max do',
        "while false do",
        "release_run.lua: a run's end frees its slot but starts no queued run",
    ),
    Mutation(
        "handler_limit_ignored",
        "lua/take_handler_slot.lua",
        'or redis.call("ZCARD", KEYS[1]) < max then',
        "or true then",
        "take_handler_slot.lua: every delivery gets a handler slot, whatever the limit",
    ),
    Mutation(
        "join_rule_fires_late",
        "lua/commit_node.lua",
        'if not fired and live + 1 >= tonumber(a["need"]) then',
        'if not fired and live >= tonumber(a["need"]) then',
        "commit_node.lua: an any / at_least join fires one live arrival too late",
    ),
    Mutation(
        "join_rule_takes_later_inputs",
        "lua/begin_node.lua",
        'local at = redis.call("HGET", KEYS[8], ARGV[9] .. "#at")',
        "local at = false",
        "begin_node.lua: a join with a rule gets the inputs that arrived after it fired",
    ),
    Mutation(
        "join_condition_not_rechecked",
        "lua/commit_node.lua",
        'if before ~= tonumber(a["observed"]) or redis.call("HEXISTS", KEYS[10], field) == 1 then',
        'if a["need"] == nil and (before ~= tonumber(a["observed"])'
        ' or redis.call("HEXISTS", KEYS[10], field) == 1) then',
        "commit_node.lua: a join condition decided on a stale read is committed anyway",
    ),
    Mutation(
        "join_rest_cut_not_counted",
        "lua/cut_join_rest.lua",
        'redis.call("DECRBY", KEYS[2], cut)',
        "cut = cut",
        "cut_join_rest.lua: tokens a join_rest cancel cut stay counted (the run never ends)",
    ),
]

TIERS = {
    # the engine's fast tiers; the CLI's configuration and the schema migrations have
    # nothing to do with the planted bugs and take minutes
    "fast": [
        "tests/unit",
        "tests/integration",
        "--ignore=tests/integration/test_misconfiguration.py",
        "--ignore=tests/integration/test_migrations.py",
        "--ignore=tests/unit/test_cli.py",
        "--ignore=tests/unit/test_hostile_input.py",
    ],
    "model": ["tests/model/test_stateful.py::test_runs_match_the_model_under_faults"],
    "e2e": ["tests/e2e"],
}


def scratch_copy(into: Path) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored files)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file():
            target = into / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def plant(copy: Path, mutation: Mutation) -> None:
    path = copy / mutation.path
    text = path.read_text()
    found = text.count(mutation.old)
    if found != 1:
        raise SystemExit(
            f"mutation {mutation.name}: expected the text once in {mutation.path}, found it "
            f"{found} times: update MUTATIONS to the current code"
        )
    path.write_text(text.replace(mutation.old, mutation.new))


def failures(junit: Path) -> list[str]:
    if not junit.exists():
        return ["(pytest wrote no report: it crashed or collected nothing)"]
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return failed


def run_tier(copy: Path, tier: str, env: dict[str, str]) -> tuple[list[str], float]:
    junit = copy / f"junit-{tier}.xml"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
         f"--junitxml={junit}", *TIERS[tier]],
        cwd=copy,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    return failures(junit), time.monotonic() - started


def check(mutation: Mutation, tiers: list[str], env: dict[str, str]) -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="wfrunner-mutant-") as folder:
        copy = Path(folder)
        scratch_copy(copy)
        plant(copy, mutation)
        caught = {}
        for tier in tiers:
            failed, took = run_tier(copy, tier, env)
            caught[tier] = failed
            print(f"  {tier}: {len(failed)} failing tests ({took:.0f} s)", flush=True)
        return caught


def report(results: list[tuple[Mutation, dict[str, list[str]]]], tiers: list[str]) -> str:
    lines = ["# Mutation report", "", f"Tiers run: {', '.join(tiers)}.", ""]
    lines += ["| mutation | " + " | ".join(tiers) + " |", "|---|" + "---|" * len(tiers)]
    for mutation, caught in results:
        cells = [str(len(caught[t])) if caught[t] else "**missed**" for t in tiers]
        lines.append(f"| `{mutation.name}` | " + " | ".join(cells) + " |")
    for mutation, caught in results:
        lines += ["", f"## `{mutation.name}`", "", mutation.what, ""]
        for tier in tiers:
            names = caught[tier]
            lines.append(f"- {tier}: " + ("missed" if not names else f"{len(names)} failing"))
            lines += [f"  - `{name}`" for name in names[:12]]
            if len(names) > 12:
                lines.append(f"  - ... and {len(names) - 12} more")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default="fast,model", help="comma-separated: fast,model,e2e")
    parser.add_argument("--only", action="append", help="a mutation name (repeatable)")
    parser.add_argument("--report", default="-", help="where to write the report (- = stdout)")
    args = parser.parse_args(argv)
    tiers = args.tiers.split(",")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    env = {
        **os.environ,
        "WFRUNNER_MODEL_EXAMPLES": os.environ.get("WFRUNNER_MODEL_EXAMPLES", "150"),
    }
    results = []
    for mutation in chosen:
        print(f"{mutation.name}: {mutation.what}", flush=True)
        results.append((mutation, check(mutation, tiers, env)))
        if args.report != "-":  # written after each mutation: a long run can be read early
            Path(args.report).write_text(report(results, tiers))
    if args.report == "-":
        print(report(results, tiers))
    missed = [m.name for m, caught in results if not any(caught.values())]
    if missed:
        print(f"missed by every tier: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
