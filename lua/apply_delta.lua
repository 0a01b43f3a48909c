--[[
apply_delta: add an integer delta to a run's token counter, at most once per op key.

KEYS[1]  counter      wfr:{<run_id>}:counter  string holding the number of tokens in flight
KEYS[2]  applied      wfr:{<run_id>}:applied  set of the op keys already applied to the counter

ARGV[1]  op_key       deterministic id of this operation, unique per token and action
                      (see wfrunner.engine.keys.op_key)
ARGV[2]  delta        integer; negative consumes tokens, positive emits them, 0 only records
ARGV[3]  run_id       the message PUBLISHed when the counter reaches 0
ARGV[4]  channel      the completion channel (wfrunner.engine.keys.COMPLETION_CHANNEL)
ARGV[5]  ttl          optional; seconds, (re)applied to both keys when greater than 0

Returns {value, changed, hit_zero}:
  op_key already applied  {current value, 0, 0}    nothing is changed or published
  applied                 {new value, 1, 1 or 0}   hit_zero is 1 when this operation brought
                                                   the counter down to 0; run_id is then
                                                   PUBLISHed on the channel, exactly once
Errors (a Redis error reply; nothing is applied and the op key is not recorded):
  op_key is empty; delta is not an integer; current value + delta would be negative.

A missing counter counts as 0. Because the op key is recorded in the same atomic step as
the change, a client that lost the reply (timeout, dropped connection) can safely send the
same call again: the retry is answered with changed = 0 and the counter is unchanged.
All keys share the {<run_id>} hash tag, so the script is valid on Redis Cluster.
]]

local counter_key = KEYS[1]
local applied_key = KEYS[2]
local op_key = ARGV[1]
local delta = tonumber(ARGV[2])
local run_id = ARGV[3]
local channel = ARGV[4]
local ttl = tonumber(ARGV[5] or "")

if op_key == nil or op_key == "" then
    return redis.error_reply("ERR apply_delta: an op key is required")
end

if delta == nil or delta ~= math.floor(delta) then
    return redis.error_reply("ERR apply_delta: delta " .. tostring(ARGV[2]) .. " is not an integer")
end

local current = tonumber(redis.call("GET", counter_key) or "0")

if redis.call("SISMEMBER", applied_key, op_key) == 1 then
    return {current, 0, 0}
end

if current + delta < 0 then
    return redis.error_reply(
        "ERR apply_delta: counter would go negative (value " .. current
        .. ", delta " .. delta .. "); nothing applied")
end

local value = redis.call("INCRBY", counter_key, delta)
redis.call("SADD", applied_key, op_key)

if ttl ~= nil and ttl > 0 then
    redis.call("EXPIRE", counter_key, ttl)
    redis.call("EXPIRE", applied_key, ttl)
end

local hit_zero = 0
if value == 0 and delta < 0 then
    hit_zero = 1
    redis.call("PUBLISH", channel, run_id)
end

return {value, 1, hit_zero}
