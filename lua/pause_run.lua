--[[
pause_run: pause a running run: from now on no delivery begins a node of it (begin_node
answers "paused" and its token stays in the outbox, pending, not counted as an attempt),
while deliveries that began before finish and commit (commit_node, join_arrive,
record_events, renew_leases, request_approval accept a paused run). See
wfrunner/pausing.py.

KEYS[1]  meta    wfr:{<run_id>}:meta
KEYS[2]  events  wfr:{<run_id>}:events

ARGV[1]  event   JSON run_paused event to append

Returns {changed, state}: changed 1 when this call paused the run; else state is the
run's state ("paused" when it was paused already, its end state, or "gone" when it has
no hot state).
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {0, "gone"}
end
if state ~= "running" then
    return {0, state}
end
redis.call("HSET", KEYS[1], "state", "paused")
redis.call("RPUSH", KEYS[2], ARGV[1])
return {1, "paused"}
