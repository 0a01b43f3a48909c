--[[
start_run: make a run live in Redis: its metadata, its counter (one token per entry
node) and its first events, which PostgreSQL already holds (the start recorded them in
the transaction that made the run RUNNING). Idempotent: a redelivered start changes nothing.

KEYS[1]  meta      wfr:{<run_id>}:meta      hash: workflow_id, state, inputs, activity
KEYS[2]  counter   wfr:{<run_id>}:counter   tokens in flight
KEYS[3]  applied   wfr:{<run_id>}:applied   op keys already applied
KEYS[4]  events    wfr:{<run_id>}:events    list of JSON events, in order
KEYS[5]  pending   wfr:{<run_id>}:pending   hash: token key -> JSON token, emitted and not
                                            yet consumed (the outbox the reconciler reads)
KEYS[6]  due       wfr:{<slot tag>}:due     the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  op_key        the start's op key
ARGV[2]  workflow_id
ARGV[3]  inputs_json   the run's inputs (JSON text)
ARGV[4]  entry_count   tokens to start with (>= 1)
ARGV[5]  now           seconds since the epoch (activity clock)
ARGV[6]  entries       JSON object: token key -> JSON token, one per entry node
ARGV[7]  gen           the hot-state generation PostgreSQL expects next (see wfrunner/fencing.py)
ARGV[8]  flush_at      when the run's history is first due to be flushed (commit_node.lua)
ARGV[9]  run_id        the run's member of the due index
ARGV[10] look_at       when the reconciler first looks at the run (now + its stall time)
ARGV[11..] events      JSON events to append (run_started, token_emitted per entry): they
                       are events 1..n, all in PostgreSQL ("flushed" = n)

Returns {started, state}: started is 1 when this call started the run, 0 when the run
already existed (state is its current state: running, failed, cancelled, completed).
]]

local op_key = ARGV[1]
local count = tonumber(ARGV[4])
if count == nil or count < 1 then
    return redis.error_reply("ERR start_run: entry_count must be at least 1")
end

local state = redis.call("HGET", KEYS[1], "state")
if state then
    return {0, state}
end

redis.call("HSET", KEYS[1], "workflow_id", ARGV[2], "state", "running",
    "inputs", ARGV[3], "activity", ARGV[5], "epoch", "1",
    "gen", ARGV[7], "flush_at", ARGV[8], "flushed", #ARGV - 10)
redis.call("SET", KEYS[2], count)
redis.call("SADD", KEYS[3], op_key)
for key, token in pairs(cjson.decode(ARGV[6])) do
    redis.call("HSET", KEYS[5], key, token)
end
for i = 11, #ARGV do
    redis.call("RPUSH", KEYS[4], ARGV[i])
end
redis.call("ZADD", KEYS[6], ARGV[10], ARGV[9])
return {1, "running"}
