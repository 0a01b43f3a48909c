"""Every Redis key of a run, and the op keys that make counter operations idempotent.

All keys of one run share the hash tag ``{<run_id>}``, so they live in one Redis Cluster
slot and a Lua script may touch several of them::

    wfr:{<run_id>}:counter    string  tokens in flight (lua/apply_delta.lua)
    wfr:{<run_id>}:applied    set     op keys already applied to the counter
    wfr:{<run_id>}:ctx        hash    node_id -> payload ref of its latest output
    wfr:{<run_id>}:payloads   hash    payload ref -> canonical JSON
    wfr:{<run_id>}:meta       hash    workflow_id, state, inputs, activity, error, epoch,
                                      gen, flushed, trimmed (see wfrunner/fencing.py)
    wfr:{<run_id>}:events     list    JSON events not yet trimmed (those after "trimmed")
    wfr:{<run_id>}:emits      hash    token key -> JSON of the tokens its node emitted
    wfr:{<run_id>}:joins      hash    join arrivals (see lua/join_arrive.lua)
    wfr:{<run_id>}:pending    hash    token key -> token: emitted, not yet consumed (outbox)
    wfr:{<run_id>}:running    hash    token key -> lease "<until>|<holder>" (engine/leases.py)
    wfr:{<run_id>}:attempts   hash    token key -> deliveries that began it
    wfr:{<run_id>}:lock       string  held by the one writer copying the run to PostgreSQL
    wfr:{<run_id>}:approvals  hash    token key -> a human node's request; "<key>#d" -> its
                                      decision (lua/request_approval.lua)
    wfr:{<run_id>}:maps       hash    map nodes' items and results (lua/map_commit.lua)
    wfr:{<run_id>}:checks     string  completion double-checks so far (a statistic the
                                      run's end records, not one PostgreSQL write per check)
    wfr:{<run_id>}:waiting    hash    node id -> why its delivery waits for a handler slot
                                      (lua/note_waiting.lua)

The concurrency limits (wfrunner/runlimits.py, wfrunner/engine/handler_slots.py) have
keys of their own, under a hash tag per workflow name or handler name::

    wfr:{wf:<name>}:slots     set     runs of the workflow holding a slot
    wfr:{wf:<name>}:queue     zset    runs waiting for a slot -> submission time (µs)
    wfr:{wf:<name>}:max       string  the limit last applied
    wfr:{h:<handler>}:slots   zset    delivery holder -> slot expiry (Redis's clock)
    wfr:{h:<handler>}:max     string  the limit last applied

The background passes' indexes (wfrunner/reconciler.py) are one key per Redis Cluster
slot, named with a hash tag that hashes to that slot (wfrunner/engine/slots.py), so a run's
own scripts update its entry in the same call as its state; on one Redis server, where
any script may touch any key, one key per block of 1,024 slots (``index_slot``)::

    wfr:{<slot tag>}:due      zset    run id -> when the reconciler looks at it next

The flushes are batched per background shard (see wfrunner/tasks/runs.py ``flush_runs``)::

    wfr:{flush:<shard>}:dirty   set     runs whose history is due to be copied to PostgreSQL
    wfr:{flush:<shard>}:queued  string  set while a flush_runs task of the shard is queued

The server key (global) holds the ``run_id`` of the Redis server process that the
reconciler last saw; a different one means Redis restarted (empty, or from a snapshot).
The passes key (global hash) holds when the reconciler and the timeout detector last ran.
The indexed key (global) says the due index holds every active run (the first pass on a
Redis without it indexes them from PostgreSQL); the sweep key holds the SCAN cursor of
the incremental search for hot state of runs that ended.

The completion channel is global (PUBLISH reaches every node of a cluster); its messages
are run ids. A run's end channel ``wfr:{<run_id>}:ended`` carries the status PostgreSQL
recorded when the run ended, for whoever waits on it (:mod:`wfrunner.ended`).

Op keys identify one operation on one token::

    <action>:<run_id>:<from>-><to>@<iteration>      e.g. consume:r1:A->B@2

``from`` is ``^`` for an entry token and ``to`` is ``*`` for an operation that covers all
of a node's targets (the start of a run, a node's whole emission). They are deterministic,
so a redelivered token maps to the same key and is applied once, yet they include the loop
iteration, so the second pass of a loop over the same edge is a new operation. Node ids are
percent-quoted, so ``->``, ``:`` and ``@`` only ever appear as separators.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from wfrunner.engine.slots import slot_of, slot_tag

PREFIX = "wfr"
#: channel on which apply_delta.lua PUBLISHes a run id when its counter reaches 0
COMPLETION_CHANNEL = f"{PREFIX}:completion"
#: the run_id (INFO server) of the Redis process the reconciler last validated runs on
SERVER_KEY = f"{PREFIX}:server"
#: hash: beat task name -> when its last pass ran (``wfrunner doctor`` tells whether the
#: reconciler and the timeout detector run at all)
PASSES_KEY = f"{PREFIX}:passes"
#: set once every active run has an entry in the due index
INDEXED_KEY = f"{PREFIX}:indexed"
#: hash: master ("*" for one server) -> the SCAN cursor of the incremental sweep for hot
#: state of ended runs
SWEEP_KEY = f"{PREFIX}:sweep:cursors"
#: what SCAN matches to find every run's hot metadata
META_PATTERN = f"{PREFIX}:{{*}}:meta"

ENTRY = "^"
ALL_TARGETS = "*"

_ACTION = re.compile(r"^[a-z][a-z_]*$")


def _tag(run_id: str) -> str:
    if not run_id or "{" in run_id or "}" in run_id:
        raise ValueError(f"run id {run_id!r} must be non-empty and free of '{{' and '}}'")
    return f"{PREFIX}:{{{run_id}}}"


def counter_key(run_id: str) -> str:
    """The run's token counter: the number of tokens in flight."""
    return f"{_tag(run_id)}:counter"


def applied_key(run_id: str) -> str:
    """The set of op keys already applied to the run's counter."""
    return f"{_tag(run_id)}:applied"


def context_key(run_id: str) -> str:
    """The hash node_id -> payload ref of that node's latest output."""
    return f"{_tag(run_id)}:ctx"


def payloads_key(run_id: str) -> str:
    """The hash payload ref -> canonical JSON (content-addressed, written once)."""
    return f"{_tag(run_id)}:payloads"


def meta_key(run_id: str) -> str:
    """The run's hot metadata; its ``state`` field gates every other script."""
    return f"{_tag(run_id)}:meta"


def events_key(run_id: str) -> str:
    """The run's event list, in emission order."""
    return f"{_tag(run_id)}:events"


def emits_key(run_id: str) -> str:
    """Committed routing: token key -> the tokens its node emitted."""
    return f"{_tag(run_id)}:emits"


def joins_key(run_id: str) -> str:
    """Join arrivals of every join instance of the run."""
    return f"{_tag(run_id)}:joins"


def pending_key(run_id: str) -> str:
    """Tokens emitted and not yet consumed: what the reconciler re-publishes if stalled."""
    return f"{_tag(run_id)}:pending"


def running_key(run_id: str) -> str:
    """Leases of tokens being run, retries' due times, republish marks (engine/leases.py)."""
    return f"{_tag(run_id)}:running"


def attempts_key(run_id: str) -> str:
    """Deliveries that began each token (the crash and retry cap)."""
    return f"{_tag(run_id)}:attempts"


def approvals_key(run_id: str) -> str:
    """Approval requests of the run's human nodes, and their decisions."""
    return f"{_tag(run_id)}:approvals"


def children_key(run_id: str) -> str:
    """The child runs the run's subworkflow nodes started (token key -> child run id),
    and how each ended (``<token key>#d`` -> the child's outcome)."""
    return f"{_tag(run_id)}:children"


def maps_key(run_id: str) -> str:
    """Map nodes' item tokens and gathered results (see lua/map_commit.lua)."""
    return f"{_tag(run_id)}:maps"


def checks_key(run_id: str) -> str:
    """Completion double-checks of the run so far."""
    return f"{_tag(run_id)}:checks"


def lock_key(run_id: str) -> str:
    """The writer lock: one flush, finish or validation of the run at a time."""
    return f"{_tag(run_id)}:lock"


def ended_channel(run_id: str) -> str:
    """The pub/sub channel announcing that the run's end is recorded in PostgreSQL."""
    return f"{_tag(run_id)}:ended"


def run_of_meta(key: str) -> str:
    """The run id of a meta key (``wfr:{<run_id>}:meta``)."""
    return key[len(PREFIX) + 2 : -len("}:meta")]


def waiting_key(run_id: str) -> str:
    """Nodes whose deliveries wait for a slot of their handler, and why."""
    return f"{_tag(run_id)}:waiting"


def slot_of_run(run_id: str) -> int:
    """The Redis Cluster slot of every key of the run."""
    _tag(run_id)
    return slot_of(run_id)


#: on one Redis server (no cluster) a script may touch keys of any slot, so the runs of
#: this many consecutive slots share one due index: a pass reads 16 keys, not 16,384
STANDALONE_BLOCK = 1024


def index_slot(slot: int, clustered: bool = True) -> int:
    """The slot whose due index holds the runs of ``slot``: itself on a Redis Cluster (a
    run's scripts may only touch its own slot), the first of its block on one server."""
    return slot if clustered else slot - slot % STANDALONE_BLOCK


def due_key_of_slot(slot: int) -> str:
    """The due index of ``slot`` (:func:`index_slot`): run id -> when the reconciler
    looks next."""
    return f"{PREFIX}:{{{slot_tag(slot)}}}:due"


def due_key(run_id: str, clustered: bool = True) -> str:
    """The due index holding the run (in the run's slot on a cluster: its scripts update
    it)."""
    return due_key_of_slot(index_slot(slot_of_run(run_id), clustered))


def flush_dirty_key(shard: int) -> str:
    """Runs of background shard ``shard`` whose history is due to be flushed."""
    return f"{PREFIX}:{{flush:{shard}}}:dirty"


def flush_queued_key(shard: int) -> str:
    """Set while a flush_runs task of background shard ``shard`` is queued."""
    return f"{PREFIX}:{{flush:{shard}}}:queued"


def shard_pass_key(shard: int) -> str:
    """Held while a reconciler pass of background shard ``shard`` runs."""
    return f"{PREFIX}:{{shard:{shard}}}:pass"


def run_keys(run_id: str) -> list[str]:
    """Every hot key of a run, for cleanup once the run has ended."""
    return [
        counter_key(run_id),
        applied_key(run_id),
        context_key(run_id),
        payloads_key(run_id),
        meta_key(run_id),
        events_key(run_id),
        emits_key(run_id),
        joins_key(run_id),
        pending_key(run_id),
        running_key(run_id),
        attempts_key(run_id),
        checks_key(run_id),
        approvals_key(run_id),
        children_key(run_id),
        waiting_key(run_id),
        maps_key(run_id),
    ]


def _node(node_id: str | None, absent: str) -> str:
    if node_id is None:
        return absent
    if not node_id:
        raise ValueError("a node id must not be empty")
    return quote(node_id, safe="")


def op_key(
    run_id: str,
    action: str,
    from_node: str | None,
    to_node: str | None,
    iteration: int,
    scope: str = "",
) -> str:
    """The deterministic id of ``action`` on the token ``from_node -> to_node``.

    ``from_node`` is None for an entry token, ``to_node`` None for an operation covering all
    targets. ``iteration`` (1-based) keeps a loop's second pass over the same edge distinct;
    ``scope`` (the loop passes the token is inside, see :mod:`wfrunner.engine.scope`) keeps
    nested loops' passes distinct too and is appended as ``/<scope>`` when not empty.
    """
    _tag(run_id)
    if not _ACTION.match(action):
        raise ValueError(f"op action {action!r} must be lower-case letters and '_'")
    if iteration < 1:
        raise ValueError(f"iteration {iteration} must be 1 or more (iterations are 1-based)")
    edge = f"{_node(from_node, ENTRY)}->{_node(to_node, ALL_TARGETS)}"
    suffix = f"/{scope}" if scope else ""
    return f"{action}:{run_id}:{edge}@{iteration}{suffix}"
