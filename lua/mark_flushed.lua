--[[
mark_flushed: after PostgreSQL accepted a flush or a finish of generation `expected` (see
wfrunner/fencing.py), move the run's hot state to the next generation, remember how many
events PostgreSQL holds, and trim those from the Redis list (they are read from
PostgreSQL from now on), so a long run's event list stays bounded.

KEYS[1]  meta    wfr:{<run_id>}:meta     fields gen, flushed, trimmed
KEYS[2]  events  wfr:{<run_id>}:events

ARGV[1]  count     events PostgreSQL now holds (seq 1..count)
ARGV[2]  expected  the generation the flush read (PostgreSQL accepted it)
ARGV[3]  epoch     the epoch the flush read: a run rebuilt since is left alone (its state
                   came from PostgreSQL after, or before, this flush: its next flush tells)

Returns 1 when recorded; 0 when the run has no hot state (it ended and was cleaned up:
nothing is recreated), or its generation is no longer `expected`, or it was rebuilt.

The list holds the events numbered trimmed+1 .. trimmed+LLEN; "trimmed" only grows.
]]

local gen = tonumber(redis.call("HGET", KEYS[1], "gen") or "0")
if not redis.call("HGET", KEYS[1], "state") or gen ~= tonumber(ARGV[2])
        or (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[3] then
    return 0
end
local count = tonumber(ARGV[1])
redis.call("HSET", KEYS[1], "gen", gen + 1)
if count > tonumber(redis.call("HGET", KEYS[1], "flushed") or "0") then
    redis.call("HSET", KEYS[1], "flushed", count)
end
local trimmed = tonumber(redis.call("HGET", KEYS[1], "trimmed") or "0")
if count > trimmed then
    redis.call("LTRIM", KEYS[2], count - trimmed, -1)
    redis.call("HSET", KEYS[1], "trimmed", count)
end
return 1
