--[[
decide_approval: record a person's decision on a waiting human node, at most once, and
make its token due for delivery (the caller publishes it).

KEYS[1]  meta       wfr:{<run_id>}:meta
KEYS[2]  approvals  wfr:{<run_id>}:approvals  (see request_approval.lua)
KEYS[3]  events     wfr:{<run_id>}:events
KEYS[4]  running    wfr:{<run_id>}:running
KEYS[5]  pending    wfr:{<run_id>}:pending
KEYS[6]  due       wfr:{<slot tag>}:due   the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  token_key  the waiting token (the caller chose it from the requests)
ARGV[2]  decision   JSON decision (decision, by, comment, data, at)
ARGV[3]  event      JSON approval_decided event
ARGV[4]  now        seconds since the epoch: a token left waiting ("<until>|approval") is
                    due from then ("<now>|retry": should the caller's message be lost,
                    the reconciler publishes it); a delivery's lease is left alone (the
                    delivery deciding a timed-out approval holds it)
ARGV[5]  look_at    when the reconciler looks at the run at the latest (now + its stall
                    time): the token's message may be lost, and the run's next look may
                    have been the approval's deadline or the child's end
ARGV[6]  run_id     the run's member of the due index

A paused run's approval is decided too: the token it makes due waits for the resume.

Returns {state, outcome, value, waiting}: state "running" (or "paused") or the run's state ("gone"
without hot state); outcome "decided" (value: the token's JSON from the outbox),
"already" (decided before; value: that decision) or "none" (no request for the token);
waiting the run's undecided approvals left.
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return {state or "gone", "", "", 0}
end
if redis.call("HEXISTS", KEYS[2], ARGV[1]) == 0 then
    return {state, "none", "", 0}
end
if redis.call("HSETNX", KEYS[2], ARGV[1] .. "#d", ARGV[2]) == 0 then
    return {state, "already", redis.call("HGET", KEYS[2], ARGV[1] .. "#d"), 0}
end
local waiting = redis.call("HINCRBY", KEYS[1], "waiting", -1)
redis.call("RPUSH", KEYS[3], ARGV[3])
local entry = redis.call("HGET", KEYS[4], ARGV[1]) or ""
if entry == "" or string.sub(entry, -9) == "|approval" then
    redis.call("HSET", KEYS[4], ARGV[1], ARGV[4] .. "|retry")
end
redis.call("HSET", KEYS[1], "activity", ARGV[4])
redis.call("ZADD", KEYS[6], "LT", ARGV[5], ARGV[6])
return {state, "decided", redis.call("HGET", KEYS[5], ARGV[1]) or "", waiting}
