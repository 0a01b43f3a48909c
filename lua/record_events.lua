--[[
record_events: append events to a running run, and note when a token's next delivery is
due (a retry after a backoff), so the reconciler does not publish it early.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  events   wfr:{<run_id>}:events
KEYS[3]  running  wfr:{<run_id>}:running   token key -> "<due>|retry" (replaces the
                                           delivery's lease; see engine/leases.py)

ARGV[1]  token_key  "" for none
ARGV[2]  due        seconds since the epoch when the token's next delivery is due
ARGV[3]  epoch      the run's generation the delivery began in ("" to skip the check)
ARGV[4..] events    JSON events

Returns 1 when written (a paused run included: a node begun before the pause schedules
its retry), 0 when the run is not running or was rebuilt since (nothing is
written).
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return 0
end
if ARGV[3] ~= "" and (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[3] then
    return 0
end
if ARGV[1] ~= "" then
    redis.call("HSET", KEYS[3], ARGV[1], ARGV[2] .. "|retry")
end
for i = 4, #ARGV do
    redis.call("RPUSH", KEYS[2], ARGV[i])
end
return 1
