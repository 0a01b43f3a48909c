--[[
await_child: a subworkflow node's delivery, once it has started the child run, lets go of
the token until the child ends: the run waits with no worker holding anything.

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  children  wfr:{<run_id>}:children  token key -> child run id;
                                            "<token key>#d" -> JSON outcome of the child
KEYS[3]  events    wfr:{<run_id>}:events
KEYS[4]  running   wfr:{<run_id>}:running   token key -> "<until>|<holder>"
KEYS[5]  pending   wfr:{<run_id>}:pending   the outbox

ARGV[1]  token_key  the subworkflow node's token
ARGV[2]  child      the child run's id (deterministic: the same for every delivery)
ARGV[3]  until      seconds since the epoch until which the token is left alone (far off:
                    the child's end decides it, see decide_child.lua)
ARGV[4]  epoch      the run's generation the delivery began in
ARGV[5..] events    JSON events appended when this call records the child (node_started,
                    child_started)

The token stays pending (the counter counts it, so the run cannot complete); unless the
child has ended already, its running entry becomes "<until>|child": not a delivery's
lease (renewals leave it), a live entry the reconciler does not publish again, and
"busy" for the idle-run detector.

Returns {state, outcome}: state "running" (also for a paused run: a delivery begun before
the pause waits; else the run's state, "stale" when the run
was rebuilt since the delivery began, or "not_pending"); outcome the child's JSON
outcome when it has ended (decide_child.lua recorded it), else "".
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return {state or "gone", ""}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[4] then
    return {"stale", ""}
end
if redis.call("HEXISTS", KEYS[5], ARGV[1]) == 0 then
    return {"not_pending", ""}
end
if redis.call("HSETNX", KEYS[2], ARGV[1], ARGV[2]) == 1 then
    for i = 5, #ARGV do
        redis.call("RPUSH", KEYS[3], ARGV[i])
    end
end
local outcome = redis.call("HGET", KEYS[2], ARGV[1] .. "#d") or ""
if outcome == "" then
    redis.call("HSET", KEYS[4], ARGV[1], ARGV[3] .. "|child")
end
return {"running", outcome}
