--[[
renew_leases: the heartbeat of one worker process for one run: extend (or release) the
leases its deliveries hold, in one round trip.

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  running  wfr:{<run_id>}:running   token key -> "<until>|<holder>"

ARGV[1]  seconds  how long the leases last from now (Redis's clock: TIME); "0" releases
                  them (the delivery stopped without committing or scheduling a retry)
ARGV[2..] pairs   token key, holder id, token key, holder id, ...

Returns the token keys of the pairs whose lease this holder no longer has (the run ended
or was rebuilt, the token was committed, or the lease expired and another delivery took
it): nothing is written for those, so a renewal never takes a lease back. A paused run's
leases are renewed: its running nodes finish.
]]

local state = redis.call("HGET", KEYS[1], "state")
local running = state == "running" or state == "paused"
local clock = redis.call("TIME")
local till = string.format("%.3f", tonumber(clock[1]) + tonumber(clock[2]) / 1000000
    + tonumber(ARGV[1]))
local lost = {}
for i = 2, #ARGV, 2 do
    local token, holder = ARGV[i], ARGV[i + 1]
    local lease = running and redis.call("HGET", KEYS[2], token)
    local _, held_by = string.match(lease or "", "^([^|]+)|(.*)$")
    if held_by ~= holder then
        lost[#lost + 1] = token
    elseif ARGV[1] == "0" then
        redis.call("HDEL", KEYS[2], token)
    else
        redis.call("HSET", KEYS[2], token, till .. "|" .. holder)
    end
end
return lost
