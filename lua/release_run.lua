--[[
release_run: a run of a workflow with a run limit ended (or was cancelled while queued):
free its slot, drop it from the queue, and move the oldest queued runs into the free
slots. Atomic, so a freed slot goes to one run only; idempotent: releasing a run again
frees nothing more (it only fills slots that are free).

KEYS[1]  slots  wfr:{wf:<name>}:slots  (see admit_run.lua)
KEYS[2]  queue  wfr:{wf:<name>}:queue
KEYS[3]  max    wfr:{wf:<name>}:max

ARGV[1]  run_id    the run that ended ("" to only fill free slots)
ARGV[2]  max_runs  the limit of the ended run's version; "" for the one last applied

Returns the runs moved from the queue into a slot, oldest first: the caller starts them
(should it die first, the reconciler starts runs that hold a slot and are still QUEUED).
]]

if ARGV[1] ~= "" then
    redis.call("SREM", KEYS[1], ARGV[1])
    redis.call("ZREM", KEYS[2], ARGV[1])
end
local max = tonumber(ARGV[2]) or tonumber(redis.call("GET", KEYS[3]) or "")
if max == nil then
    return {}
end
local promoted = {}
while redis.call("SCARD", KEYS[1]) < max do
    local head = redis.call("ZRANGE", KEYS[2], 0, 0)
    if #head == 0 then
        break
    end
    redis.call("ZREM", KEYS[2], head[1])
    redis.call("SADD", KEYS[1], head[1])
    promoted[#promoted + 1] = head[1]
end
return promoted
