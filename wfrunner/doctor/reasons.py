"""Why a run is stuck: findings from one snapshot of its state (pure: snapshot in,
findings out, no server is asked anything).

A run that does not progress is in one of a few situations, each with its own repair:

- ``lost_message``: a token is in the outbox, no delivery holds it, no retry or approval
  is due later, and no message for it is in the broker: nobody will ever run it unless it
  is published again (the reconciler does after the run is idle for three of its
  intervals; ``--repair requeue`` does it now);
- ``dead_worker``: a delivery's lease expired: its worker stopped renewing it (killed,
  out of memory, its machine lost); the token is published again the same way;
- ``hot_state_lost``: PostgreSQL says the run is active, Redis has nothing of it (it is
  rebuilt from PostgreSQL: ``--repair rebuild``);
- ``counter_mismatch``: the token counter disagrees with the outbox (the run could never
  complete, or complete too early): rebuilt from PostgreSQL's history;
- ``idle``: no activity for longer than WFRUNNER_RUN_TIMEOUT: the timeout detector fails
  it at its next check;
- ``end_unrecorded`` / ``completion_due``: the run ended (or has no token left) in Redis
  and its end is not recorded yet: the reconciler finishes it.

And the situations that are waiting, not stuck: ``running`` (a live lease), ``queued``
(a message waits in the broker), ``waiting_retry``, ``waiting_approval``,
``waiting_child`` (a subworkflow node's child run has not ended; ``child_end_untold``
when it has and the parent was not told), ``waiting_join`` (with what each missing
input's upstream is doing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wfrunner.doctor.describe import clock, holder_text, span
from wfrunner.engine.leases import APPROVAL, CHILD, REPUBLISHED, RETRY, Lease, place_of
from wfrunner.engine.runstate import DEAD
from wfrunner.engine.tokens import Token

# finding kinds
LOST_MESSAGE = "lost_message"
DEAD_WORKER = "dead_worker"
HOT_STATE_LOST = "hot_state_lost"
COUNTER_MISMATCH = "counter_mismatch"
IDLE = "idle"
END_UNRECORDED = "end_unrecorded"
COMPLETION_DUE = "completion_due"
NO_WORKER = "no_worker"
RUNNING = "running"
QUEUED = "queued"
PENDING = "pending"
WAITING_RETRY = "waiting_retry"
WAITING_APPROVAL = "waiting_approval"
WAITING_JOIN = "waiting_join"
ENDED = "ended"
NOT_STARTED = "not_started"
POISON = "poison_message"
WAITING_CHILD = "waiting_child"
#: paused by an operator (wfrunner pause): not stuck, it waits for its resume
PAUSED = "paused"
CHILD_END_UNTOLD = "child_end_untold"

# repair actions (what ``--repair`` takes), and what a diagnosis may suggest besides
REQUEUE, REBUILD, FAIL, CANCEL = "requeue", "rebuild", "fail", "cancel"
ACTIONS = (REQUEUE, REBUILD, FAIL, CANCEL)
#: a worker consuming the queue must be started: no repair of the run does it
START_WORKER = "start_worker"
#: nothing to do but let the reconciler's next pass act (or wait for a person)
WAIT = "wait"

_ACTIVE = ("RUNNING", "WAITING")
_ENDED = ("COMPLETED", "FAILED", "CANCELLED")
#: the queue execute_node messages go to (wfrunner.tasks.config.TASK_QUEUE)
TASK_QUEUE = "wfrunner.tasks"
#: a registered worker with no heartbeat for this long is not counted as alive (the
#: registry is written every 30 s)
WORKER_SILENT_AFTER = 90.0


@dataclass(frozen=True)
class Limits:
    """The settings the engine's own repairs act on."""

    #: seconds a run is idle before the reconciler publishes its unheld tokens again
    stall_after: float
    run_timeout: float
    timeout_check_interval: float
    reconcile_interval: float
    #: seconds a republished token is left alone (WFRUNNER_VISIBILITY_TIMEOUT)
    republish_hold: float


@dataclass(frozen=True)
class Worker:
    """A worker as the registry (PostgreSQL) knows it."""

    name: str
    status: str
    last_heartbeat: float
    queues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything a diagnosis reads of one run, read once (see :mod:`.read`)."""

    run_id: str
    workflow_id: str
    workflow: str
    #: PostgreSQL's status (RUNNING, WAITING, ...)
    status: str
    created_at: float
    #: PostgreSQL's last_activity_at
    last_activity: float
    #: this machine's clock (run activity is written with the workers' clocks)
    now: float
    #: Redis's clock (leases are measured on it)
    clock: float
    limits: Limits
    ended_at: float | None = None
    error: str | None = None
    #: whether Redis holds the run's hot state (its meta)
    hot: bool = False
    #: the hot state's ``state`` (running, failed, ...) and ``activity``
    state: str | None = None
    activity: float | None = None
    counter: int | None = None
    pending: Mapping[str, Token] = field(default_factory=dict)
    running: Mapping[str, Lease] = field(default_factory=dict)
    attempts: Mapping[str, int] = field(default_factory=dict)
    joins: Mapping[str, str] = field(default_factory=dict)
    #: token key -> approval request, its ``decision`` None while undecided
    approvals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: token key -> when its token_emitted event was written (events Redis still holds)
    emitted_at: Mapping[str, float] = field(default_factory=dict)
    #: node -> the nodes with an edge to it (the IR)
    predecessors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: join node -> the predecessors it waits for
    join_inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: token key -> "queued" (waits in a queue) or "reserved" (a worker holds it,
    #: unacknowledged); None when the broker was not read
    messages: Mapping[str, str] | None = None
    #: False when the broker held more messages than were read
    messages_complete: bool = True
    #: why ``messages`` is None: the broker was not asked for, or cannot be listed
    broker_unread: str = "the broker was not read"
    workers: tuple[Worker, ...] = ()
    #: beat task -> when its last pass ran ("reconcile", "detect_timeouts")
    passes: Mapping[str, float] = field(default_factory=dict)
    #: (counter, outbox token keys) a replay of the run's events gives, when it was read
    replayed: tuple[int, frozenset[str]] | None = None
    #: poison messages naming the run (parked in Redis, or dead letters): one line each
    poison: tuple[str, ...] = ()
    #: token key -> the child run its subworkflow node started, and child id -> status
    children: Mapping[str, str] = field(default_factory=dict)
    child_status: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    kind: str
    #: whether this alone keeps the run from ever progressing without a repair
    stuck: bool
    #: one line for people
    summary: str
    #: the repair it calls for (one of :data:`ACTIONS`, :data:`START_WORKER`, :data:`WAIT`)
    action: str | None = None
    node: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stuck": self.stuck,
            "node": self.node,
            "summary": self.summary,
            "action": self.action,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Diagnosis:
    run_id: str
    workflow_id: str
    workflow: str
    status: str
    #: seconds since the run was created, and since it last progressed
    age: float
    idle: float
    findings: tuple[Finding, ...]
    #: things about the deployment that explain findings (the reconciler is not running)
    notes: tuple[str, ...] = ()
    #: when the timeout detector will fail the run if nothing changes (None: it will not)
    fails_at: float | None = None

    @property
    def stuck(self) -> bool:
        return any(f.stuck for f in self.findings)

    @property
    def action(self) -> str | None:
        """The repair the first stuck finding calls for."""
        return next((f.action for f in self.findings if f.stuck and f.action), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "workflow": self.workflow,
            "status": self.status,
            "stuck": self.stuck,
            "age_seconds": round(self.age, 3),
            "idle_seconds": round(self.idle, 3),
            "suggested_action": self.action,
            "fails_at": self.fails_at,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


def diagnose(s: Snapshot) -> Diagnosis:
    """Every finding about the run, the stuck ones first."""
    idle = s.now - max(s.activity or 0.0, s.last_activity)
    fails_at = None
    if s.status in _ENDED:
        when = f" at {clock(s.ended_at)}" if s.ended_at else ""
        findings = [Finding(ENDED, False, f"not stuck: it ended {s.status}{when}")]
    elif s.status == "PAUSED" or s.state == "paused":
        words = f"not stuck: it is paused (`wfrunner resume {s.run_id}` resumes it)"
        findings = [Finding(PAUSED, False, words, WAIT)]
    elif s.status not in _ACTIVE:
        findings = [_not_started(s)]
    elif not s.hot:
        findings = [_hot_state_lost(s)]
    elif s.state != "running":
        findings = [_end_unrecorded(s)]
    else:
        findings = [*_tokens(s), *_joins(s), *_counter(s), *_poison(s)]
        idled, fails_at = _idle(s, idle)
        findings += idled
    ordered = sorted(findings, key=lambda f: not f.stuck)
    return Diagnosis(
        run_id=s.run_id,
        workflow_id=s.workflow_id,
        workflow=s.workflow,
        status=s.status,
        age=s.now - s.created_at,
        idle=idle,
        findings=tuple(ordered),
        notes=tuple(_beat_notes(s, ordered)),
        fails_at=fails_at,
    )


# -- the run as a whole -------------------------------------------------------------------


def _not_started(s: Snapshot) -> Finding:
    return Finding(
        NOT_STARTED,
        False,
        f"not started yet ({s.status}, created {span(s.now - s.created_at)} ago): the "
        "reconciler starts it should its start message be lost",
    )


def _hot_state_lost(s: Snapshot) -> Finding:
    return Finding(
        HOT_STATE_LOST,
        True,
        f"PostgreSQL says {s.status}, Redis holds nothing of it (its hot state was lost): "
        "the reconciler rebuilds it from PostgreSQL on its next pass",
        REBUILD,
    )


def _end_unrecorded(s: Snapshot) -> Finding:
    return Finding(
        END_UNRECORDED,
        True,
        f"it ended {str(s.state).upper()} in Redis, PostgreSQL still says {s.status}: the "
        "reconciler records its end on its next pass",
        WAIT,
    )


def _counter(s: Snapshot) -> list[Finding]:
    outbox = len(s.pending)
    if s.counter is None or s.counter != outbox:
        said = "no counter" if s.counter is None else f"a counter of {s.counter}"
        summary = f"Redis holds {said} but {outbox} tokens in the outbox"
        if s.counter is not None:
            summary += (
                ": the run could never complete"
                if s.counter > outbox
                else ": the run could end with work left"
            )
        details: dict[str, Any] = {"counter": s.counter, "outbox": outbox}
        if s.replayed is not None:
            counter, keys = s.replayed
            summary += f"; a replay of its events gives {counter} and {len(keys)}"
            details.update(replayed_counter=counter, replayed_outbox=len(keys))
        return [Finding(COUNTER_MISMATCH, True, summary, REBUILD, details=details)]
    if outbox == 0:
        waited = s.now - (s.activity or s.last_activity)
        return [
            Finding(
                COMPLETION_DUE,
                waited >= s.limits.stall_after,
                "no token is in flight but the run is still RUNNING: its completion check "
                "was lost; the reconciler checks it on its next pass",
                WAIT,
            )
        ]
    return []


def _poison(s: Snapshot) -> list[Finding]:
    """Messages of the run no worker could read: set aside, so their tokens look lost
    (the reconciler publishes those again)."""
    if not s.poison:
        return []
    noun = "message of this run was" if len(s.poison) == 1 else "messages of this run were"
    return [
        Finding(
            POISON,
            False,
            f"{len(s.poison)} {noun} set aside as poison: " + "; ".join(s.poison),
            details={"poison": list(s.poison)},
        )
    ]


def _busy(s: Snapshot) -> bool:
    """The timeout detector's test: a live lease, a retry or an approval not yet due."""
    return any(e.until > s.clock and e.holder != REPUBLISHED for e in s.running.values())


def _idle(s: Snapshot, idle: float) -> tuple[list[Finding], float | None]:
    """The idle finding, and when the timeout detector fails the run (None: never, as
    things are: it is WAITING, or busy)."""
    if s.status != "RUNNING" or _busy(s):
        return [], None
    fails_at = max(s.activity or 0.0, s.last_activity) + s.limits.run_timeout
    if idle < s.limits.run_timeout:
        return [], fails_at
    summary = (
        f"no activity for {span(idle)} (WFRUNNER_RUN_TIMEOUT is {s.limits.run_timeout:g} s): "
        f"the timeout detector fails it at its next check (every "
        f"{s.limits.timeout_check_interval:g} s)"
    )
    return [Finding(IDLE, True, summary, FAIL, details={"idle_seconds": round(idle, 3)})], fails_at


def _beat_notes(s: Snapshot, findings: Iterable[Finding]) -> list[str]:
    """Whether the engine's own repairs run at all: without ``celery beat`` nothing
    republishes, rebuilds or times out a stuck run."""
    if not any(f.stuck for f in findings):
        return []
    notes = []
    for task, every, does in (
        ("reconcile", s.limits.reconcile_interval, "republishes lost tokens and rebuilds"),
        ("detect_timeouts", s.limits.timeout_check_interval, "fails idle runs"),
    ):
        last = s.passes.get(task)
        if last is None:
            notes.append(
                f"wfrunner.{task} never ran on this Redis (is `celery beat` running?): "
                f"nothing {does}; `wfrunner doctor RUN_ID --repair ...` acts now"
            )
        elif s.now - last > max(3 * every, 60.0):
            notes.append(
                f"wfrunner.{task} last ran at {clock(last)}, {span(s.now - last)} ago (it "
                f"runs every {every:g} s): is `celery beat` running?"
            )
    return notes


# -- tokens ------------------------------------------------------------------------------


def _tokens(s: Snapshot) -> list[Finding]:
    found = []
    for key, token in sorted(s.pending.items(), key=lambda kv: (kv[1].to_node, kv[0])):
        state = token_state(s, key)
        about = {"token": key, "from": token.from_node, "scope": token.scope}
        found.append(
            replace(
                state,
                summary=f"{_name(token)}: {state.summary}",
                node=token.to_node,
                details={**about, **state.details},
            )
        )
    return found


def _name(token: Token) -> str:
    where = f" (scope {token.scope})" if token.scope else ""
    return f"node {token.to_node}{where}"


def token_state(s: Snapshot, key: str) -> Finding:
    """What the outbox token ``key`` is doing, and whether it is stuck."""
    entry = s.running.get(key)
    live = entry is not None and entry.until > s.clock
    if entry is not None and entry.held:
        return _running(s, entry) if live else _dead_worker(s, entry)
    if entry is not None and live and entry.holder == APPROVAL:
        return _approval(s, key, entry)
    if entry is not None and live and entry.holder == CHILD:
        return _child(s, key)
    if entry is not None and live and entry.holder == RETRY:
        attempt = s.attempts.get(key, 0)
        return Finding(
            WAITING_RETRY,
            False,
            f"attempt {attempt} failed; its retry is due at {clock(entry.until)} "
            f"(in {span(entry.until - s.clock)})",
            details={"attempt": attempt, "due_at": entry.until},
        )
    message = s.messages.get(key) if s.messages is not None else None
    if message is not None:
        return _queued(s, key, message)
    republished = entry if entry is not None and live and entry.holder == REPUBLISHED else None
    return _unheld(s, key, entry, republished)


def _running(s: Snapshot, entry: Lease) -> Finding:
    return Finding(
        RUNNING,
        False,
        f"running ({holder_text(entry.holder)}; lease live {span(entry.until - s.clock)} more)",
        details={"holder": entry.holder, "lease_until": entry.until},
    )


def _dead_worker(s: Snapshot, entry: Lease) -> Finding:
    words = (
        f"its worker stopped renewing its lease ({holder_text(entry.holder)}), which expired "
        f"at {clock(entry.until)}, {span(s.clock - entry.until)} ago"
    )
    details: dict[str, Any] = {"holder": entry.holder, "expired_at": entry.until}
    workers = _workers_on(s, entry.holder)
    if workers:
        words += "; " + ", ".join(_worker_words(s, w) for w in workers)
        details["workers"] = [w.name for w in workers]
    words += ": the reconciler publishes it again on its next pass"
    return Finding(DEAD_WORKER, True, words, REQUEUE, details=details)


def _workers_on(s: Snapshot, holder: str) -> list[Worker]:
    """The registered workers on the host a lease names."""
    place = place_of(holder)
    if place is None:
        return []
    host = place[0]
    return [w for w in s.workers if w.name == host or w.name.endswith(f"@{host}")]


def _alive(s: Snapshot, worker: Worker) -> bool:
    return worker.status == "online" and s.now - worker.last_heartbeat < WORKER_SILENT_AFTER


def _worker_words(s: Snapshot, worker: Worker) -> str:
    """What the registry says of a worker on the lease's host (its heartbeat is written
    every 30 s: a worker killed a moment ago still looks online there)."""
    if worker.status != "online":
        return f"worker {worker.name} is {worker.status} (registry)"
    silent = "" if _alive(s, worker) else ", silent since"
    return (
        f"worker {worker.name} is registered there (last heartbeat{silent} at "
        f"{clock(worker.last_heartbeat)})"
    )


def _approval(s: Snapshot, key: str, entry: Lease) -> Finding:
    request = s.approvals.get(key, {})
    since = request.get("requested_at")
    deadline = request.get("deadline")
    words = "waits for a person's approval"
    if since is not None:
        words += f" since {clock(float(since))}"
    words += f" (deadline {clock(float(deadline))})" if deadline is not None else " (no deadline)"
    words += f": wfrunner approve {s.run_id} {request.get('node', '')}".rstrip()
    return Finding(
        WAITING_APPROVAL, False, words, WAIT, details={"requested_at": since, "deadline": deadline}
    )


def _child(s: Snapshot, key: str) -> Finding:
    """A subworkflow node waiting for its child run: stuck only when the child ended and
    its parent was not told (the reconciler passes that end on)."""
    child = s.children.get(key, "?")
    status = s.child_status.get(child, "unknown")
    details = {"child_run_id": child, "child_status": status}
    if status in _ENDED:
        return Finding(
            CHILD_END_UNTOLD,
            True,
            f"its child run {child} ended {status}, but the end did not reach this run: the "
            "reconciler passes it on on its next pass",
            WAIT,
            details=details,
        )
    return Finding(
        WAITING_CHILD,
        False,
        f"waits for its child run {child} ({status}; `wfrunner doctor {child}` tells more)",
        details=details,
    )


def _queued(s: Snapshot, key: str, message: str) -> Finding:
    if message == "reserved":
        return Finding(QUEUED, False, "a worker holds its message (reserved, not yet begun)")
    waited = s.now - s.emitted_at.get(key, s.activity or s.last_activity)
    consumers = [w for w in s.workers if _alive(s, w) and (not w.queues or TASK_QUEUE in w.queues)]
    if s.workers and not consumers and waited >= s.limits.stall_after:
        return Finding(
            NO_WORKER,
            True,
            f"its message has waited in {TASK_QUEUE} for {span(waited)} and no live worker "
            f"consumes that queue (worker registry)",
            START_WORKER,
        )
    return Finding(QUEUED, False, f"its message waits in the broker's {TASK_QUEUE} queue")


def _unheld(s: Snapshot, key: str, entry: Lease | None, republished: Lease | None) -> Finding:
    """A token no delivery holds, with no retry or approval due later and no message
    known to the broker."""
    since = max(s.emitted_at.get(key, 0.0), s.activity or s.last_activity)
    waited = s.now - since
    unread = "" if s.messages is not None else f" ({s.broker_unread})"
    if s.messages is not None and not s.messages_complete:
        unread = " (not among the messages read: the broker holds more)"
    if waited < s.limits.stall_after and republished is None:
        return Finding(PENDING, False, f"emitted {span(waited)} ago; being published")
    details: dict[str, Any] = {"waited_seconds": round(waited, 3)}
    if republished is not None:
        at = republished.until - s.limits.republish_hold
        details["republished_at"] = at
        words = (
            f"published again at {clock(at)}, yet no message for it is in the broker"
            f"{unread}: the reconciler leaves it until {clock(republished.until)}; "
            "--repair requeue publishes it now"
        )
        return Finding(LOST_MESSAGE, True, words, REQUEUE, details=details)
    words = f"no worker took it for {span(waited)} and no message for it is in the broker{unread}"
    if entry is not None and entry.holder == RETRY:
        words = f"its retry was due at {clock(entry.until)}; " + words
    elif entry is not None and entry.holder == REPUBLISHED:
        at = entry.until - s.limits.republish_hold
        words += f"; the reconciler last published it at {clock(at)}"
        details["republished_at"] = at
    elif entry is not None and entry.holder == APPROVAL:
        words = f"its approval's deadline passed at {clock(entry.until)}; " + words
    words += ": the reconciler publishes it again on its next pass"
    return Finding(LOST_MESSAGE, True, words, REQUEUE, details=details)


# -- joins -------------------------------------------------------------------------------


def _joins(s: Snapshot) -> list[Finding]:
    found = []
    instances = sorted({f[: -len("#n")] for f in s.joins if f.endswith("#n")})
    for instance in instances:
        node, _, scope = instance.partition("|")
        inputs = s.join_inputs.get(node)
        if not inputs or f"{instance}#fin" in s.joins:
            continue  # complete: its fire token is an outbox token like any other
        arrived = [p for p in inputs if f"{instance}|{p}" in s.joins]
        missing = [p for p in inputs if p not in arrived]
        upstream = {p: _upstream(s, p, scope) for p in missing}
        stuck = any(state.stuck and state.kind == NOT_STARTED for state in upstream.values())
        has = ", ".join(
            f"{p}{' (dead path)' if s.joins[f'{instance}|{p}'] == DEAD else ''}" for p in arrived
        )
        waits = "; ".join(f"{p}: {state.summary}" for p, state in upstream.items())
        where = f" (scope {scope})" if scope else ""
        found.append(
            Finding(
                WAITING_JOIN,
                stuck,
                f"join {node}{where} has {has or 'no input yet'}; waits for {waits}",
                FAIL if stuck else None,
                node,
                {
                    "instance": instance,
                    "arrived": arrived,
                    "missing": {
                        p: {"state": st.kind, "why": st.summary} for p, st in upstream.items()
                    },
                },
            )
        )
    return found


def _upstream(s: Snapshot, node: str, scope: str) -> Finding:
    """What a join's missing input ``node`` is doing: its own token's state, else the
    nearest upstream nodes with tokens in flight, else nothing leads to it any more."""
    mine = [k for k, t in s.pending.items() if t.to_node == node]
    same = [k for k in mine if s.pending[k].scope == scope] or mine
    if same:
        state = token_state(s, same[0])
        return Finding(state.kind, state.stuck, state.summary)
    feeding = _in_flight_upstream(s, node)
    if feeding:
        doing = ", ".join(f"{n} ({_short(s, n)})" for n in feeding)
        return Finding(PENDING, False, f"not started; waits for {doing}")
    return Finding(
        NOT_STARTED,
        True,
        "never started, and no token in flight leads to it (its arrival was lost)",
    )


def _in_flight_upstream(s: Snapshot, node: str) -> list[str]:
    """The nearest nodes upstream of ``node`` that have tokens in the outbox."""
    targets = {t.to_node for t in s.pending.values()}
    seen, frontier, found = {node}, [node], []
    while frontier:
        step = []
        for current in frontier:
            for before in s.predecessors.get(current, ()):
                if before in seen:
                    continue
                seen.add(before)
                if before in targets:
                    found.append(before)
                else:
                    step.append(before)
        frontier = step
    return sorted(found)


def _short(s: Snapshot, node: str) -> str:
    key = next(k for k, t in s.pending.items() if t.to_node == node)
    return token_state(s, key).kind.replace("_", " ")
