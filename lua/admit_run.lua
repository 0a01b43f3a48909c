--[[
admit_run: take a slot of a workflow with a run limit (concurrency.max_runs) for a run,
or queue the run, first come first started. Idempotent: a redelivered start of a run
that holds a slot is admitted again and takes no second slot; a queued run keeps its
place.

KEYS[1]  slots  wfr:{wf:<name>}:slots  set: the runs holding a slot
KEYS[2]  queue  wfr:{wf:<name>}:queue  sorted set: waiting run -> when it was submitted
                                       (microseconds since the epoch: FIFO order)
KEYS[3]  max    wfr:{wf:<name>}:max    string: the limit last applied (wfrunner limits)

ARGV[1]  run_id
ARGV[2]  score     the run's submission time, in microseconds
ARGV[3]  max_runs  the limit of the version being started (>= 1)

Returns {admitted, position, running, queued, promoted...}: admitted 1 when the run holds
a slot (position 0), else 0 and its 1-based place in the queue; running and queued the
counts after the call; promoted the other queued runs this call moved into free slots
(a larger limit, or slots freed with no release to fill them): the caller starts them.
]]

local run = ARGV[1]
local max = tonumber(ARGV[3])
if max == nil or max < 1 then
    return redis.error_reply("ERR admit_run: max_runs must be at least 1")
end
redis.call("SET", KEYS[3], max)
if redis.call("SISMEMBER", KEYS[1], run) == 1 then
    return {1, 0, redis.call("SCARD", KEYS[1]), redis.call("ZCARD", KEYS[2])}
end
redis.call("ZADD", KEYS[2], "NX", ARGV[2], run)
local promoted = {}
local admitted = 0
while redis.call("SCARD", KEYS[1]) < max do
    local head = redis.call("ZRANGE", KEYS[2], 0, 0)
    if #head == 0 then
        break
    end
    redis.call("ZREM", KEYS[2], head[1])
    redis.call("SADD", KEYS[1], head[1])
    if head[1] == run then
        admitted = 1
    else
        promoted[#promoted + 1] = head[1]
    end
end
local position = 0
if admitted == 0 then
    position = redis.call("ZRANK", KEYS[2], run) + 1
end
local reply = {admitted, position, redis.call("SCARD", KEYS[1]), redis.call("ZCARD", KEYS[2])}
for _, id in ipairs(promoted) do
    reply[#reply + 1] = id
end
return reply
