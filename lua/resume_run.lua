--[[
resume_run: resume a paused run, and choose the outbox tokens to publish so it goes on
exactly where it stopped, atomically (a delivery that begins meanwhile keeps its lease).
See wfrunner/pausing.py.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  events   wfr:{<run_id>}:events
KEYS[3]  pending  wfr:{<run_id>}:pending   token key -> JSON token (the outbox)
KEYS[4]  running  wfr:{<run_id>}:running   token key -> "<until>|<holder>"

ARGV[1]  event    JSON run_resumed event to append
ARGV[2]  now      seconds since the epoch (run activity: a long pause is not idleness)
ARGV[3]  hold     seconds a token published here is left alone by the reconciler (its
                  message may be waiting in a long queue), as claim_stalled.lua marks it

A pending token is published unless a delivery holds a live lease on it (it is running:
its commit dispatches what follows) or it waits for an undecided approval whose deadline
has not passed. A retry not yet due is published with the seconds left until it is due
(its entry stays: the reconciler leaves it alone until then); any other token is marked
"<now + hold>|republished". Lease times are Redis's clock (TIME).

Returns {changed, state, token, delay, token, delay, ...}: changed 1 when this call
resumed the run, followed by the JSON tokens to publish, each with the seconds (text) to
wait before its delivery; else state is the run's state ("running" when it was not
paused, its end state, or "gone").
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {0, "gone"}
end
if state ~= "paused" then
    return {0, state}
end
local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local mark = string.format("%.3f|republished", now + tonumber(ARGV[3]))
redis.call("HSET", KEYS[1], "state", "running", "activity", ARGV[2])
redis.call("RPUSH", KEYS[2], ARGV[1])
local reply = {1, "running"}
local pending = redis.call("HGETALL", KEYS[3])
for i = 1, #pending, 2 do
    local key = pending[i]
    local till, holder = string.match(redis.call("HGET", KEYS[4], key) or "", "^([^|]+)|(.*)$")
    local left = (tonumber(till) or 0) - now
    if holder == "retry" and left > 0 then
        reply[#reply + 1] = pending[i + 1]
        reply[#reply + 1] = string.format("%.3f", left)
    elseif left > 0 and holder ~= "republished" then
        -- a live delivery lease (running), or an approval waiting within its deadline
    else
        redis.call("HSET", KEYS[4], key, mark)
        reply[#reply + 1] = pending[i + 1]
        reply[#reply + 1] = "0"
    end
end
return reply
