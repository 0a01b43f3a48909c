--[[
map_commit: the atomic end of one delivery of a map node (a node with config.map_over,
see wfrunner/engine/mapping.py), at most once per token. Two kinds:

  start  the head (the token that reached the node): store the elements' payloads and the
         item tokens, emit the first max_concurrency items
  item   one element done: record its result at its index, emit the item max_concurrency
         further on (if any), and, when this is the last result recorded, the finish
         token (whose delivery completes the node with the ordered list of results)

So at most max_concurrency items of an instance are ever in flight, whatever the order
they finish in, and exactly one commit (the one that records the n-th result) emits the
finish token. The counter moves by (tokens emitted - 1) per commit, as for any node.

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  counter   wfr:{<run_id>}:counter
KEYS[3]  applied   wfr:{<run_id>}:applied
KEYS[4]  payloads  wfr:{<run_id>}:payloads
KEYS[5]  emits     wfr:{<run_id>}:emits
KEYS[6]  events    wfr:{<run_id>}:events
KEYS[7]  pending   wfr:{<run_id>}:pending
KEYS[8]  running   wfr:{<run_id>}:running
KEYS[9]  maps      wfr:{<run_id>}:maps      hash, per map instance <node>|<scope>:
                     "<instance>#n"      number of elements
                     "<instance>#done"   results recorded
                     "<instance>|r|<i>"  payload ref of element i's result
                     "<instance>|t|<j>"  JSON of item j's token ("fin": the finish token)
                     "<instance>|k|<j>"  that token's key

ARGV[1]  op_key       the consumed token's advance op key
ARGV[2]  token_key    identity of the consumed token
ARGV[3]  by           the delivery's nonce (the Celery task id)
ARGV[4]  holder       the delivery's lease holder
ARGV[5]  epoch        the run's generation the delivery began in (see begin_node.lua)
ARGV[6]  now          seconds since the epoch
ARGV[7]  flush_every  seconds between flushes of the run's history to PostgreSQL
ARGV[8]  instance     "<node>|<scope>"
ARGV[9]  kind         "start" or "item"
ARGV[10] work         JSON. start: {"total": n, "fields": {maps field: value},
                      "payloads": {ref: canonical JSON}, "emit": [item indexes]};
                      item: {"index": i, "cap": max_concurrency, "ref": result ref,
                      "text": result JSON}
ARGV[11..] events     JSON events to append

Returns what commit_node.lua returns, {value, changed, hit_zero, emits_json, state, mine,
flush_due, joins}: {-1, 0, 0, "", state, 0, 0, {}} with nothing written when the run is
not running ("gone" when it has no hot state), was rebuilt since ("stale") or does not
hold the token in its outbox ("not_pending"); the recorded emits and mine (this very
delivery committed it) when the token was committed already; else the new counter and
what was emitted.
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then -- paused: an item begun before commits
    return {-1, 0, 0, "", state or "gone", 0, 0, {}}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[5] then
    return {-1, 0, 0, "", "stale", 0, 0, {}}
end
if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 1 then
    local recorded = redis.call("HGET", KEYS[5], ARGV[2]) or '{"by":"","tokens":{}}'
    local before = cjson.decode(recorded)
    local mine = 0
    if before["by"] == ARGV[3] and before["holder"] == ARGV[4] then
        mine = 1
    end
    return {tonumber(redis.call("GET", KEYS[2]) or "0"), 0, 0, recorded, state, mine, 0, {}}
end
if redis.call("HEXISTS", KEYS[7], ARGV[2]) == 0 then
    return {-1, 0, 0, "", "not_pending", 0, 0, {}}
end

local instance = ARGV[8]
local work = cjson.decode(ARGV[10])
local emit = {}
if ARGV[9] == "start" then
    for ref, text in pairs(work["payloads"]) do
        redis.call("HSETNX", KEYS[4], ref, text)
    end
    for field, value in pairs(work["fields"]) do
        redis.call("HSET", KEYS[9], field, value)
    end
    redis.call("HSET", KEYS[9], instance .. "#n", work["total"], instance .. "#done", 0)
    for _, j in ipairs(work["emit"]) do
        emit[#emit + 1] = tostring(j)
    end
else
    local index = tonumber(work["index"])
    local total = tonumber(redis.call("HGET", KEYS[9], instance .. "#n") or "-1")
    if total < 0 then
        return redis.error_reply("ERR map_commit: map " .. instance .. " was never started")
    end
    redis.call("HSETNX", KEYS[4], work["ref"], work["text"])
    local done
    if redis.call("HSETNX", KEYS[9], instance .. "|r|" .. index, work["ref"]) == 1 then
        done = redis.call("HINCRBY", KEYS[9], instance .. "#done", 1)
    else
        done = tonumber(redis.call("HGET", KEYS[9], instance .. "#done"))
    end
    local next_index = index + tonumber(work["cap"])
    if next_index < total then
        emit[#emit + 1] = tostring(next_index)
    end
    if done == total then
        emit[#emit + 1] = "fin"
    end
end

local tokens = {}
local count = 0
for _, j in ipairs(emit) do
    local key = redis.call("HGET", KEYS[9], instance .. "|k|" .. j)
    local token = redis.call("HGET", KEYS[9], instance .. "|t|" .. j)
    if not key or not token then
        return redis.error_reply("ERR map_commit: map " .. instance .. " has no item " .. j)
    end
    tokens[key] = token
    count = count + 1
end
local delta = count - 1
local current = tonumber(redis.call("GET", KEYS[2]) or "0")
if current + delta < 0 then
    return redis.error_reply("ERR map_commit: counter would go negative (value "
        .. current .. ", delta " .. delta .. ")")
end

local recorded = cjson.encode({by = ARGV[3], holder = ARGV[4], tokens = tokens})
local value = redis.call("INCRBY", KEYS[2], delta)
redis.call("SADD", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[5], ARGV[2], recorded)
redis.call("HDEL", KEYS[7], ARGV[2])
redis.call("HDEL", KEYS[8], ARGV[2])
for key, token in pairs(tokens) do
    redis.call("HSET", KEYS[7], key, token)
end
for i = 11, #ARGV do
    redis.call("RPUSH", KEYS[6], ARGV[i])
end
redis.call("HSET", KEYS[1], "activity", ARGV[6])

local flush_due = 0
local now = tonumber(ARGV[6])
if now >= tonumber(redis.call("HGET", KEYS[1], "flush_at") or "0") then
    redis.call("HSET", KEYS[1], "flush_at", now + tonumber(ARGV[7]))
    flush_due = 1
end
-- an item in flight or the finish token always follows: a map commit never ends the run
return {value, 1, 0, recorded, state, 1, flush_due, {}}
