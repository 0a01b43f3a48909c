--[[
commit_node: the atomic end of one token's processing: store the node's output, record
what it emitted, apply the net counter delta and append its events, at most once per token.

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  counter   wfr:{<run_id>}:counter
KEYS[3]  applied   wfr:{<run_id>}:applied
KEYS[4]  payloads  wfr:{<run_id>}:payloads
KEYS[5]  ctx       wfr:{<run_id>}:ctx       hash: node id -> ref of its latest output
KEYS[6]  emits     wfr:{<run_id>}:emits
KEYS[7]  events    wfr:{<run_id>}:events

ARGV[1]  op_key       the consumed token's op key
ARGV[2]  delta        emitted tokens - 1 (a join arrival that does not fire: -1)
ARGV[3]  token_key    identity of the consumed token
ARGV[4]  emits_json   JSON list of the emitted tokens
ARGV[5]  run_id       PUBLISHed on the channel when the counter reaches 0
ARGV[6]  channel      the completion channel
ARGV[7]  node_id
ARGV[8]  output_ref   "" when the node stores no output (a join arrival, a skip)
ARGV[9]  output_json
ARGV[10] now          seconds since the epoch
ARGV[11..] events     JSON events to append

Returns {value, changed, hit_zero, emits_json, state}:
  the run is not running   {-1, 0, 0, "", state or "gone"}: nothing written
  token already committed  {counter, 0, 0, the emits first recorded, "running"}
  committed                {new counter, 1, 1 if it reached 0, emits_json, "running"}
Errors: the counter would go negative (nothing applied).
A client retry after a lost reply is answered as "already committed": safe to repeat.
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" then
    return {-1, 0, 0, "", state or "gone"}
end

local current = tonumber(redis.call("GET", KEYS[2]) or "0")
if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 1 then
    return {current, 0, 0, redis.call("HGET", KEYS[6], ARGV[3]) or "[]", state}
end

local delta = tonumber(ARGV[2])
if current + delta < 0 then
    return redis.error_reply("ERR commit_node: counter would go negative (value "
        .. current .. ", delta " .. delta .. ")")
end

if ARGV[8] ~= "" then
    redis.call("HSETNX", KEYS[4], ARGV[8], ARGV[9])
    redis.call("HSET", KEYS[5], ARGV[7], ARGV[8])
end
local value = redis.call("INCRBY", KEYS[2], delta)
redis.call("SADD", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[6], ARGV[3], ARGV[4])
for i = 11, #ARGV do
    redis.call("RPUSH", KEYS[7], ARGV[i])
end
redis.call("HSET", KEYS[1], "activity", ARGV[10])

local hit_zero = 0
if value == 0 and delta < 0 then
    hit_zero = 1
    redis.call("PUBLISH", ARGV[6], ARGV[5])
end
return {value, 1, hit_zero, ARGV[4], state}
