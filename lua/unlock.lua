--[[
unlock: release a run's writer lock (wfr:{<run_id>}:lock) only if this holder still holds
it; a holder whose lock expired and was taken by another must not release that one.

KEYS[1]  lock    wfr:{<run_id>}:lock
ARGV[1]  holder  the random value the holder SET it to

Returns 1 when released, 0 when the lock was not (or no longer) this holder's.
]]

if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
