--[[
claim_stalled: the reconciler's choice of a running run's outbox tokens to publish again,
and the mark that keeps it from choosing them again soon, atomically (a delivery that
begins meanwhile keeps its lease).

KEYS[1]  meta     wfr:{<run_id>}:meta      field "activity": when the run last progressed
KEYS[2]  pending  wfr:{<run_id>}:pending   token key -> JSON token (the outbox)
KEYS[3]  running  wfr:{<run_id>}:running   token key -> "<until>|<holder>"
KEYS[4]  due      wfr:{<slot tag>}:due     the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  now          seconds since the epoch (the caller's clock, as "activity" is)
ARGV[2]  stall_after  seconds without activity after which the run counts as idle
ARGV[3]  hold         seconds a republished token is left alone (its message may be
                      waiting in a long queue)
ARGV[4]  force        "1": an earlier republish mark does not hold a token back (an
                      operator's ``wfrunner doctor --repair requeue``); "" otherwise
ARGV[5]  run_id       the run's member of the due index
ARGV[6]  farthest     the latest next look (seconds since the epoch)

A pending token is published again when
  - a delivery's lease on it expired (its worker is gone), whether or not the run is idle;
  - it has no live entry (never begun, its publish lost, a retry overdue, a republish
    mark expired) and the run is idle.
It is never published while a delivery's lease is live, a retry is not yet due or it was
republished less than ``hold`` seconds ago. Lease times are Redis's clock (TIME).

The run's next look in the due index is set to the first time one of its pending tokens
could be published again: the end of its live entry (a lease, a retry, an approval's
deadline, a republish mark), or, for one with none, when the run turns idle; never later
than ``farthest``. A run whose tokens all wait on far entries is thus left alone until
then (an approval decided, a child's end, a resume bring the look nearer again).

Returns {token, previous, token, previous, ...}: each JSON token to publish (marked
"<now + hold>|republished") followed by the running entry it had ("" for none), which
says why it was stalled (an expired lease names its holder).
]]

if redis.call("HGET", KEYS[1], "state") ~= "running" then
    return {}
end
local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local idle = tonumber(ARGV[1]) - tonumber(redis.call("HGET", KEYS[1], "activity") or "0")
    >= tonumber(ARGV[2])
local mark = string.format("%.3f|republished", now + tonumber(ARGV[3]))
local stalled = {}
local look = tonumber(ARGV[6])
local idle_at = tonumber(redis.call("HGET", KEYS[1], "activity") or "0") + tonumber(ARGV[2])
local pending = redis.call("HGETALL", KEYS[2])
for i = 1, #pending, 2 do
    local token = pending[i]
    local entry = redis.call("HGET", KEYS[3], token) or ""
    local till, holder = string.match(entry, "^([^|]+)|(.*)$")
    local lost
    if ARGV[4] == "1" and holder == "republished" then
        lost = true
    elseif till and tonumber(till) and tonumber(till) > now then
        lost = false
    elseif holder and holder ~= "retry" and holder ~= "republished" then
        lost = true
    else
        lost = idle
    end
    local next_at
    if lost then
        redis.call("HSET", KEYS[3], token, mark)
        stalled[#stalled + 1] = pending[i + 1]
        stalled[#stalled + 1] = entry
        next_at = now + tonumber(ARGV[3])
    elseif till and tonumber(till) and tonumber(till) > now then
        next_at = tonumber(till)
    else
        next_at = idle_at
    end
    if next_at < look then
        look = next_at
    end
end
redis.call("ZADD", KEYS[4], look, ARGV[5])
return stalled
