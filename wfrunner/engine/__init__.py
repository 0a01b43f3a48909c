"""The engine: a run's hot state in Redis and the rules that move tokens through it.

The hot path (what ``wfrunner.execute_node`` runs):

* :mod:`~wfrunner.engine.executor`  one token through one node: begin, join, run, commit
* :mod:`~wfrunner.engine.runstate`  :class:`RunState`, one method per ``lua/*.lua`` script
  (start_run, begin_node, join_arrive, commit_node, end_run, record_events, mark_flushed,
  unlock, drop_run, completion_view, renew_leases, claim_stalled)
* :mod:`~wfrunner.engine.routing`   where a finished node's tokens go (pure)
* :mod:`~wfrunner.engine.scope`     loop passes carried by tokens
* :mod:`~wfrunner.engine.completion` the completion double-check
* :mod:`~wfrunner.engine.events`    the event vocabulary
* :mod:`~wfrunner.engine.keys`      every Redis key of a run (``{run_id}`` hash tag), op keys
* :mod:`~wfrunner.engine.tokens`    the :class:`Token` that travels in Celery messages
* :mod:`~wfrunner.engine.payloads`  content-addressed JSON payloads
* :mod:`~wfrunner.engine.mapping`   map nodes (``config.map_over``): item identity, next
  item (pure); :mod:`~wfrunner.engine.mapnode` their deliveries,
  :mod:`~wfrunner.engine.mapstate` ``lua/map_commit.lua``,
  :mod:`~wfrunner.engine.maprebuild` their state rebuilt from the event log

The design's primitive counter API, for callers that drive a counter themselves:

* :mod:`~wfrunner.engine.counter`   :class:`TokenCounter` over ``lua/apply_delta.lua`` and
  ``lua/init_counter.lua``
* :mod:`~wfrunner.engine.sdk`       :class:`Sdk`: consume / emit / advance / context

``commit_node.lua`` applies the same rule as ``apply_delta.lua`` (one op key, applied at
most once, never below zero, PUBLISH on zero) together with the rest of a node's commit,
so that a node's output, emissions and counter change are one atomic step.
"""

from wfrunner.engine.counter import ApplyDeltaResult, TokenCounter
from wfrunner.engine.sdk import Sdk
from wfrunner.engine.tokens import Token

__all__ = ["ApplyDeltaResult", "Sdk", "Token", "TokenCounter"]
