"""Why a run or a node waits, for the run document: a QUEUED run for a slot of its
workflow's run limit (``queued_position``, ``waiting_for``), a PENDING node for a slot of
its handler's limit (the node's ``waiting_for`` and ``waiting_since``). Read only when
the document is read, never on a node's path, and only for workflows that can wait so.
"""

from __future__ import annotations

import time
from typing import Any

from wfrunner import runlimits
from wfrunner.compiler.ir import IR
from wfrunner.engine import handler_slots
from wfrunner.runtime import Runtime
from wfrunner.states import NodeStatus, RunStatus

_LIVE = (RunStatus.RUNNING.value, RunStatus.WAITING.value)


def explain(rt: Runtime, doc: dict[str, Any], ir: IR) -> None:
    """Add to ``doc`` (a run document) why the run or its pending nodes wait."""
    status = doc["status"]
    if status == RunStatus.QUEUED.value and ir.max_runs is not None:
        doc.update(runlimits.place(rt, doc["run_id"], doc["workflow_id"], ir.max_runs))
        return
    if status not in _LIVE or not any(n.function_name for n in ir.nodes.values()):
        return
    pending = {
        node_id
        for node_id, info in doc["nodes"].items()
        if info["status"] == NodeStatus.PENDING.value
    }
    if not pending:
        return
    now = time.time()
    for node_id, note in handler_slots.waiting_notes(rt.redis, doc["run_id"]).items():
        if node_id in pending and current(note, now):
            doc["nodes"][node_id]["waiting_for"] = note.get("for")
            doc["nodes"][node_id]["waiting_since"] = note.get("since")


#: seconds a node's waiting note is shown after its last put-off delivery (one waiting
#: for a slot is put off again within a second, and notes it each time); an older note is
#: one its node got past (the note is not cleared then: that would cost every delivery of
#: a limited handler a round trip), shown again only if a later pass waits
NOTE_SHOWN_FOR = 30.0


def current(note: dict[str, Any], now: float) -> bool:
    """Whether a waiting note is recent enough to say why its PENDING node waits now."""
    since = note.get("since")
    return isinstance(since, (int, float)) and now - since <= NOTE_SHOWN_FOR


def limits(rt: Runtime) -> dict[str, Any]:
    """What ``wfrunner limits`` and ``GET /limits`` show: per workflow with a run limit its
    running and queued runs, per handler with a limit its busy slots."""
    store = runlimits.slots(rt)
    return {
        "workflows": [store.usage(name).to_dict() for name in store.names()],
        "handlers": [h.to_dict() for h in handler_slots.usage(rt.redis)],
    }
