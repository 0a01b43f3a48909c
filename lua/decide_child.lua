--[[
decide_child: a child run has ended; record its outcome for the parent's waiting
subworkflow node, at most once, and make the node's token due for delivery (the caller
publishes it).

KEYS[1]  meta      wfr:{<run_id>}:meta      (the parent run's keys)
KEYS[2]  children  wfr:{<run_id>}:children  (see await_child.lua)
KEYS[3]  events    wfr:{<run_id>}:events
KEYS[4]  running   wfr:{<run_id>}:running
KEYS[5]  pending   wfr:{<run_id>}:pending
KEYS[6]  due       wfr:{<slot tag>}:due   the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  token_key  the subworkflow node's token (the child run's parent_token)
ARGV[2]  outcome    JSON {child_run_id, status, output, error}
ARGV[3]  event      JSON child_ended event
ARGV[4]  now        seconds since the epoch: a token left waiting ("<until>|child") is
                    due from then ("<now>|retry": should the caller's message be lost, the
                    reconciler publishes it); a delivery's lease is left alone
ARGV[5]  look_at    when the reconciler looks at the run at the latest (now + its stall
                    time): the token's message may be lost, and the run's next look may
                    have been the approval's deadline or the child's end
ARGV[6]  run_id     the run's member of the due index

A paused parent records it too: the token it makes due waits for the resume.

The outcome may come before the delivery that started the child recorded it (a child
that ends at once): await_child.lua then finds it and does not wait.

Returns {state, outcome, token, workflow_id}: state "running" or the run's state ("gone"
without hot state); outcome "decided" (token: the token's JSON from the outbox, "" when
it is not there) or "already" (recorded before); workflow_id the parent's workflow.
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return {state or "gone", "", "", ""}
end
local workflow = redis.call("HGET", KEYS[1], "workflow_id") or ""
if redis.call("HSETNX", KEYS[2], ARGV[1] .. "#d", ARGV[2]) == 0 then
    return {state, "already", "", workflow}
end
redis.call("RPUSH", KEYS[3], ARGV[3])
local entry = redis.call("HGET", KEYS[4], ARGV[1]) or ""
if entry == "" or string.sub(entry, -6) == "|child" then
    redis.call("HSET", KEYS[4], ARGV[1], ARGV[4] .. "|retry")
end
redis.call("HSET", KEYS[1], "activity", ARGV[4])
redis.call("ZADD", KEYS[6], "LT", ARGV[5], ARGV[6])
return {state, "decided", redis.call("HGET", KEYS[5], ARGV[1]) or "", workflow}
