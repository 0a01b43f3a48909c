"""A fleet: several worker hosts (``-n w1@hostA`` ..., each with a pool of its own:
prefork, threads, solo) and beat, while a chaos thread SIGKILLs a random worker's whole
process group at random moments and restarts it after a random pause. Runs of every shape
(a chain, a fan-out into a join, an exclusive branch into a join, a loop, a map node) are
submitted before and during the chaos. Every run must end COMPLETED with its event log
whole (replayed, nothing pending), each node instance's side effect made exactly once per
token, and no token run by two live processes at once.

The chaos is drawn from a seeded ``random.Random``: ``WFRUNNER_FAULT_SEED`` (default
below) picks it, and every failure message names the seed, so a failing schedule of
kills can be replayed (the processes' own timing still varies)."""

from __future__ import annotations

import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fault.checks import CounterSampler, assert_clean, check_runs
from tests.fault.cluster import Cluster
from tests.fault.effects import check_effects, check_replays, check_republishes
from tests.fault.procs import CeleryProcess
from tests.fault.test_worker_kill import in_flight
from tests.fault.workflows import fleet_shapes

SEED = int(os.environ.get("WFRUNNER_FAULT_SEED", "20261206"))

#: (host, pool, concurrency) of each worker
HOSTS = [("hostA", "prefork", 2), ("hostB", "threads", 2), ("hostC", "prefork", 1)]
LONG_HOSTS = [*HOSTS, ("hostD", "solo", 1)]


#: a task that runs nodes (a node's own, or a start running the entry nodes) in a worker log
NODE_TASK = re.compile(
    r"Task wfrunner\.(?:node:\S+?|start_run)\[([0-9a-f-]+)\] (received|succeeded|raised|retry)"
)


@dataclass
class Chaos:
    """Kills a random worker every ``pause`` s (drawn from the range; then waiting at
    most ``aim`` s more for the victim to be running nodes), restarts it after ``down`` s
    (drawn too), for ``seconds`` s; ``between`` is called after each kill (the test
    submits more runs there, so later kills still find work)."""

    cluster: Cluster
    rng: random.Random
    seconds: float
    pause: tuple[float, float] = (0.8, 2.5)
    down: tuple[float, float] = (0.0, 1.5)
    aim: float = 3.0
    between: Callable[[], None] = lambda: None
    kills: list[str] = field(default_factory=list)
    #: kills that took a node's delivery down mid-flight (received, not finished)
    hits: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _run(self) -> None:
        since = {w.name: 0 for w in self.cluster.workers}
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(*self.pause))
            victim = self.rng.choice(self.cluster.workers)
            self.hits += self._aim(victim, since[victim.name])
            victim.kill()
            self.kills.append(victim.name)
            since[victim.name] = victim.log.stat().st_size
            time.sleep(self.rng.uniform(*self.down))
            victim.start(wait_ready=False)
            self.between()

    def _aim(self, victim: CeleryProcess, since: int) -> bool:
        deadline = time.monotonic() + self.aim
        while not in_flight(victim, since, NODE_TASK):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def inputs(rng: random.Random) -> dict[str, Any]:
    tag = uuid.UUID(int=rng.getrandbits(128)).hex
    items = [{"tag": tag, "i": i} for i in range(rng.randint(2, 6))]
    return {"tag": tag, "score": rng.randrange(100), "items": items}


def run_fleet(
    cluster: Cluster,
    hosts: list[tuple[str, str, int]],
    runs: int,
    seconds: float,
    top_up: int,
    timeout: float,
    beats: int = 1,
) -> None:
    rng = random.Random(SEED)
    workflows = [cluster.register(d) for d in fleet_shapes().values()]
    cluster.start_hosts(hosts)
    cluster.start_beat(beats)
    run_ids: list[str] = []

    def submit(count: int) -> None:
        for _ in range(count):
            workflow = workflows[len(run_ids) % len(workflows)]
            run_ids.append(cluster.submit(workflow, inputs(rng)))

    began = time.monotonic()
    chaos = Chaos(cluster, random.Random(rng.random()), seconds, between=lambda: submit(top_up))
    with CounterSampler(cluster.redis_server.url) as sampler:
        submit(runs)
        thread = threading.Thread(target=chaos.run, name="chaos")
        thread.start()
        thread.join()
        stuck = cluster.wait(run_ids, timeout)
    report = check_runs(
        cluster.rt,
        cluster.redis,
        run_ids,
        cluster.logs(),
        sampler,
        seed=SEED,
        reproduce=f"WFRUNNER_FAULT_SEED={SEED}",
        hosts=[f"{h}/{p}/-c{c}" for h, p, c in hosts],
        beats=beats,
        kills=len(chaos.kills),
        killed=dict(sorted((k, chaos.kills.count(k)) for k in set(chaos.kills))),
        kills_with_work_in_flight=chaos.hits,
        seconds=round(time.monotonic() - began, 1),
    )
    check_effects(cluster.rt, run_ids, Path(cluster.env["WFRUNNER_FAULT_MARKERS"]), report)
    hold = float(cluster.knobs["WFRUNNER_VISIBILITY_TIMEOUT"])
    check_republishes(cluster.rt, run_ids, hold, report)
    check_replays(cluster.rt, run_ids, report)
    print(report)
    assert chaos.error is None, f"seed {SEED}: the chaos thread failed: {chaos.error!r}"
    assert not stuck, f"{report}\n{cluster.tails()}"
    assert_clean(report, cluster.tails())
    assert report.statuses == {"COMPLETED": len(run_ids)}, report
    assert chaos.kills and chaos.hits, report  # the chaos did kill, and killed work


def test_fleet_of_hosts_killed_at_random(make_cluster: Callable[..., Cluster]) -> None:
    run_fleet(make_cluster(), HOSTS, runs=25, seconds=15, top_up=8, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fleet_of_hosts_killed_at_random_long(make_cluster: Callable[..., Cluster]) -> None:
    """Four hosts (one a solo pool) and, as if by mistake, two beats (see
    test_double_beat.py) for 90 s of kills."""
    run_fleet(make_cluster(), LONG_HOSTS, runs=60, seconds=90, top_up=10, timeout=600, beats=2)
