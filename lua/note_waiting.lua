--[[
note_waiting: a delivery put off because its node's handler has no free slot says so in
its run (the run document shows the node PENDING with ``waiting_for``), and counts as the
run's activity: a run whose nodes wait for slots is not idle.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  waiting  wfr:{<run_id>}:waiting  hash: node id -> JSON {"for": reason, "since": t}

ARGV[1]  node_id
ARGV[2]  note     the JSON note
ARGV[3]  now      seconds since the epoch (activity clock)

Returns the run's state ("gone" without hot state); nothing is written unless it is
running.
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return "gone"
end
if state == "running" then
    redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
    redis.call("HSET", KEYS[1], "activity", ARGV[3])
end
return state
