--[[
end_run: stop a running (or paused) run (a node failed, it timed out, it was cancelled,
it completed) so that no token of it is processed any more; every other script refuses
once state is neither running nor paused.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  events   wfr:{<run_id>}:events
KEYS[3]  due      wfr:{<slot tag>}:due   the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  state    the end state: failed, cancelled or completed
ARGV[2]  error    the reason ("" for none)
ARGV[3]  run_id   the run's member of the due index, "" to leave its next look as it is
                  (a completion: its finisher records the end at once)
ARGV[4]  look_at  when the reconciler looks at the run at the latest: should the caller
                  die before it records the end, the reconciler records it
ARGV[5..] events  JSON events to append

Returns {changed, state}: changed 1 when this call ended the run; otherwise the run had
already ended (state is how) or has no hot state ("gone").
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {0, "gone"}
end
if state ~= "running" and state ~= "paused" then
    return {0, state}
end
redis.call("HSET", KEYS[1], "state", ARGV[1], "error", ARGV[2])
for i = 5, #ARGV do
    redis.call("RPUSH", KEYS[2], ARGV[i])
end
if ARGV[3] ~= "" then
    redis.call("ZADD", KEYS[3], "LT", ARGV[4], ARGV[3])
end
return {1, ARGV[1]}
