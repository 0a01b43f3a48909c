--[[
init_counter: create a run's token counter with its entry tokens, at most once.

KEYS[1]  counter      wfr:{<run_id>}:counter  string holding the number of tokens in flight
KEYS[2]  applied      wfr:{<run_id>}:applied  set of the op keys already applied to the counter

ARGV[1]  op_key       the run's start operation (wfrunner.engine.keys.op_key(run_id, "init", ...))
ARGV[2]  value        integer >= 1: the number of entry tokens
ARGV[3]  ttl          optional; seconds, applied to both keys when greater than 0

Returns {value, changed}:
  op_key already applied  {current value, 0}   a redelivered start changes nothing
  created                 {value, 1}
Errors (nothing is changed):
  value is not an integer >= 1;
  the counter exists but was not created by this op key (another start, or tokens
  emitted into a run that was never started).

Like apply_delta, a client retry after a lost reply is safe: the op key is recorded in the
same atomic step that creates the counter.
]]

local counter_key = KEYS[1]
local applied_key = KEYS[2]
local op_key = ARGV[1]
local value = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3] or "")

if value == nil or value ~= math.floor(value) or value < 1 then
    return redis.error_reply(
        "ERR init_counter: value " .. tostring(ARGV[2]) .. " is not an integer >= 1")
end

if redis.call("SISMEMBER", applied_key, op_key) == 1 then
    return {tonumber(redis.call("GET", counter_key) or "0"), 0}
end

if redis.call("EXISTS", counter_key) == 1 then
    return redis.error_reply(
        "ERR init_counter: counter already exists (value "
        .. redis.call("GET", counter_key) .. ") and was not created by this op key")
end

redis.call("SET", counter_key, value)
redis.call("SADD", applied_key, op_key)

if ttl ~= nil and ttl > 0 then
    redis.call("EXPIRE", counter_key, ttl)
    redis.call("EXPIRE", applied_key, ttl)
end

return {value, 1}
