--[[
request_approval: a human node's delivery asks for its decision, then lets go of the
token: the run waits with no worker holding anything.

KEYS[1]  meta       wfr:{<run_id>}:meta
KEYS[2]  approvals  wfr:{<run_id>}:approvals  token key -> JSON request (node, scope,
                                              requested_at, deadline, on_timeout, prompt);
                                              "<token key>#d" -> JSON decision
KEYS[3]  events     wfr:{<run_id>}:events
KEYS[4]  running    wfr:{<run_id>}:running    token key -> "<until>|<holder>"
KEYS[5]  pending    wfr:{<run_id>}:pending    the outbox
KEYS[6]  due        wfr:{<slot tag>}:due      the due index of the run's slot
                                              (wfrunner/reconciler.py): the run is looked
                                              at by the deadline at the latest

ARGV[1]  token_key  the human node's token
ARGV[2]  request    JSON request, stored unless the token has one already
ARGV[3]  until      seconds since the epoch until which the token is left alone (the
                    approval's deadline, or a far future one without a timeout)
ARGV[4]  epoch      the run's generation the delivery began in
ARGV[5]  run_id     the run's member of the due index
ARGV[6..] events    JSON events appended when this call makes the request (node_started,
                    approval_requested)

The token stays pending (the counter counts it, so the run cannot complete); its running
entry becomes "<until>|approval": not a delivery's lease (renewals leave it), a live
entry the reconciler does not publish again until the deadline passes, and "busy" for
the idle-run detector. Once decided, the entry is left to decide_approval.lua.

Returns {state, request, decision, waiting}: state "running" (also for a paused run: a
delivery begun before the pause asks; else the run's state, or
"stale" when the run was rebuilt since the delivery began, or "not_pending"); request
the stored request JSON; decision the stored decision JSON or ""; waiting the run's
undecided approvals.
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return {state or "gone", "", "", 0}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[4] then
    return {"stale", "", "", 0}
end
if redis.call("HEXISTS", KEYS[5], ARGV[1]) == 0 then
    return {"not_pending", "", "", 0}
end
if redis.call("HSETNX", KEYS[2], ARGV[1], ARGV[2]) == 1 then
    redis.call("HINCRBY", KEYS[1], "waiting", 1)
    for i = 6, #ARGV do
        redis.call("RPUSH", KEYS[3], ARGV[i])
    end
end
local decision = redis.call("HGET", KEYS[2], ARGV[1] .. "#d") or ""
if decision == "" then
    redis.call("HSET", KEYS[4], ARGV[1], ARGV[3] .. "|approval")
    redis.call("ZADD", KEYS[6], "LT", ARGV[3], ARGV[5])
end
return {"running", redis.call("HGET", KEYS[2], ARGV[1]), decision,
    tonumber(redis.call("HGET", KEYS[1], "waiting") or "0")}
