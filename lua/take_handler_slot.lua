--[[
take_handler_slot: a delivery of a node whose handler has a fleet-wide limit
(max_concurrency) takes one of its slots before it begins the node. A slot is a member
of a sorted set scored by when it expires (Redis's clock: TIME); the delivery's lease
heartbeat renews it and the delivery removes it once its node committed, so the slot of
a worker killed mid-node comes back when it expires. Idempotent per holder: taking it
again renews it.

KEYS[1]  slots  wfr:{h:<handler>}:slots  sorted set: delivery holder -> expiry
KEYS[2]  max    wfr:{h:<handler>}:max    string: the limit last applied (wfrunner limits)

ARGV[1]  holder   the delivery's lease holder id (unique per delivery)
ARGV[2]  seconds  how long the slot lasts unless renewed
ARGV[3]  max      the handler's limit (>= 1)

Returns {taken, busy, wait}: taken 1 when the holder has a slot; else 0, busy the live
slots, and wait the seconds (text) until the first of them expires unless renewed.
]]

local max = tonumber(ARGV[3])
if max == nil or max < 1 then
    return redis.error_reply("ERR take_handler_slot: max must be at least 1")
end
local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", string.format("%.3f", now))
redis.call("SET", KEYS[2], max)
local till = string.format("%.3f", now + tonumber(ARGV[2]))
if redis.call("ZSCORE", KEYS[1], ARGV[1]) or redis.call("ZCARD", KEYS[1]) < max then
    redis.call("ZADD", KEYS[1], till, ARGV[1])
    return {1, redis.call("ZCARD", KEYS[1]), ""}
end
local first = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
return {0, redis.call("ZCARD", KEYS[1]), string.format("%.3f", tonumber(first[2]) - now)}
