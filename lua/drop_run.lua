--[[
drop_run: what finishing a run does last, atomically (a snapshot Redis takes, and may
come back from, never holds the lock without the keys): delete the ended run's hot keys,
release its writer lock if this holder still holds it, and announce the end.

KEYS[1]      lock     wfr:{<run_id>}:lock
KEYS[2]      due      wfr:{<slot tag>}:due   the due index of the run's slot: the run leaves it
KEYS[3..]    the run's hot keys (keys.run_keys)

ARGV[1]  holder   the random value the holder SET the lock to
ARGV[2]  channel  where the end is announced ("" for no announcement)
ARGV[3]  message  the announcement
ARGV[4]  run_id   the run's member of the due index

Returns 1 when the lock was this holder's and released, else 0 (the keys are deleted
either way: the run's end is recorded in PostgreSQL before this runs).
]]

redis.call("DEL", unpack(KEYS, 3))
redis.call("ZREM", KEYS[2], ARGV[4])
local released = 0
if redis.call("GET", KEYS[1]) == ARGV[1] then
    released = redis.call("DEL", KEYS[1])
end
if ARGV[2] ~= "" then
    redis.call("PUBLISH", ARGV[2], ARGV[3])
end
return released
