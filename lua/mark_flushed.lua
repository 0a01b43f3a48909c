--[[
mark_flushed: remember how many of a running run's events PostgreSQL holds. Never
recreates the hot state of a run that ended and was cleaned up meanwhile, and never moves
the mark backwards (two flushers may finish in any order).

KEYS[1]  meta   wfr:{<run_id>}:meta   field "flushed"
ARGV[1]  count  events now copied to PostgreSQL

Returns 1 when recorded, 0 when the run is not running.
]]

if redis.call("HGET", KEYS[1], "state") ~= "running" then
    return 0
end
local count = tonumber(ARGV[1])
if count > tonumber(redis.call("HGET", KEYS[1], "flushed") or "0") then
    redis.call("HSET", KEYS[1], "flushed", count)
end
return 1
