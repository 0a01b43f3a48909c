--[[
completion_view: what the completion double-check reads, in one round trip, counting the
check (the run's end records the count) only while the run exists: a check racing the
run's cleanup leaves no key behind.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  counter  wfr:{<run_id>}:counter
KEYS[3]  joins    wfr:{<run_id>}:joins
KEYS[4]  checks   wfr:{<run_id>}:checks
ARGV[1]  seconds the check count outlives its last check

Returns {meta as a flat field/value list, counter or false, joins as a flat list}; an
empty meta list when the run has no hot state.
]]

local meta = redis.call("HGETALL", KEYS[1])
if #meta == 0 then
    return {meta, false, {}}
end
redis.call("INCR", KEYS[4])
redis.call("EXPIRE", KEYS[4], ARGV[1])
return {meta, redis.call("GET", KEYS[2]), redis.call("HGETALL", KEYS[3])}
