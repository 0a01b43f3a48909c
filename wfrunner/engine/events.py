"""The run's events: what happened, in order, as JSON objects.

Every state change of a run or node is an event; the run document, ``wfrunner trace`` and
the REST event list are projections of them (:mod:`wfrunner.history`). Events are appended
to the run's Redis list by the Lua scripts in the same atomic step as the change they
describe, copied to PostgreSQL's ``event_log`` by every flush (then trimmed from Redis) and
when the run ends.

type               caused by                          data
run_started        start_run                          workflow_id
token_emitted      a node's commit (or the start)     from, to, scope
node_started       a node task begins                 scope
node_completed     a node's commit                    scope, output_ref
node_skipped       dead-path elimination              scope; reason (a join rule never
                                                      held / cut short by join_rest
                                                      cancel: then cut, was, token)
join_arrived       a join's predecessor arrived       from, scope, live; late (a join
                                                      with a rule had fired already)
join_fired         the arrival that fired a join      from, scope, ref (its payload)
                   with a rule (its token is sent)
loop_decided       a loop node's commit               pass, outcome (back|break|timeout)
map_started        a map node's head commit           scope, total, concurrency, output_ref
                                                      (the list), input_ref, token (the head)
map_item           a map node's element committed     scope, index, output_ref (its result)
node_retrying      a handler raised, a retry is due   scope, attempt, error, delay
node_failed        a handler or built-in raised       scope, error; caught, on_error,
                   (for good)                         error_ref when the node's on_error
                                                      node took over (the run goes on)
approval_requested a human node's first delivery       scope, token, deadline, prompt
approval_decided   approve / reject / the deadline    scope, decision, by, comment, data, at
node_cancelled     cancellation, for a node cut short scope, token, was (running, waiting
                                                      for approval, waiting for its retry),
                                                      error
child_started      a subworkflow node's first         scope, child_run_id, workflow
                   delivery
child_ended        the child run's end                child_run_id, status, error
run_completed      check_completion                   -
run_failed         a node failed / timed out          error (the timeout detector adds
                                                      detected_by, found: its diagnosis)
run_cancelled      cancellation                       error, by, reason, cut_short
                                                      [{node, scope, was}]
run_recovered      rebuilt from PostgreSQL            pending, by, why, tokens (their nodes)
reconciler_repaired tokens published again             repair ("republished"), by, summary,
                   (the reconciler, wfrunner doctor)  tokens [{node, from, scope, cause,
                                                      why, holder, expired_at}]
run_resumed        a dead letter retried, or a        dead_letter (node: the letter's);
                   paused run resumed                 by (wfrunner resume)
run_paused         wfrunner pause                     by, reason
run_redriven       wfrunner rerun                     attempt, from, by, reason, ended,
                                                      error (of the attempt before)
failure_handler_ran / the workflow's on_failure       handler, output / error (appended
failure_handler_failed handler, after a FAILED end    to the ended run's log, once)

``wfrunner replay`` folds these back into the run's state (:mod:`wfrunner.replay.fold`).
"""

from __future__ import annotations

import time
from typing import Any


def event(kind: str, node: str | None = None, **data: Any) -> dict[str, Any]:
    return {"type": kind, "node": node, "t": round(time.time(), 6), **data}


def split(evt: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """(type, node, data) for the PostgreSQL event log."""
    data = {k: v for k, v in evt.items() if k not in ("type", "node")}
    return str(evt["type"]), evt.get("node"), data
