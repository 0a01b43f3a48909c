--[[
cancel_run: end a running (or paused) run as cancelled, and record what the cancellation cut short,
atomically (a node that commits first is not shown cut short; one that commits after
finds the run ended and writes nothing).

KEYS[1]  meta     wfr:{<run_id>}:meta
KEYS[2]  events   wfr:{<run_id>}:events
KEYS[3]  pending  wfr:{<run_id>}:pending   token key -> JSON token (the outbox)
KEYS[4]  running  wfr:{<run_id>}:running   token key -> "<until>|<holder>"
KEYS[5]  due      wfr:{<slot tag>}:due     the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  error    the run's error ("cancelled by ...: reason")
ARGV[2]  now      seconds since the epoch (the events' time)
ARGV[3]  event    JSON run_cancelled event, to which this script adds "cut_short"
ARGV[4]  run_id   the run's member of the due index
ARGV[5]  look_at  when the reconciler looks at the run at the latest: should the caller
                  die before it records the end, the reconciler records it

For each pending token, a node_cancelled event (node, scope, token, was): "running" when
a delivery holds a live lease on it, "waiting for approval" (a human node), "waiting for
its retry" (a retry not yet due); a token never begun is listed in run_cancelled's
cut_short with was "queued" and gets no event (its node ends SKIPPED).

Returns {changed, state, holders...}: changed 1 when this call cancelled the run (holders:
the lease holders of the running deliveries, "<uuid>@<task id>", whose tasks the caller
may revoke); else state is how the run ended, or "gone" when it has no hot state.
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {0, "gone"}
end
if state ~= "running" and state ~= "paused" then
    return {0, state}
end
local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local reply = {1, "cancelled"}
local cut = {}
local pending = redis.call("HGETALL", KEYS[3])
for i = 1, #pending, 2 do
    local token = cjson.decode(pending[i + 1])
    local entry = redis.call("HGET", KEYS[4], pending[i]) or ""
    local till, holder = string.match(entry, "^([^|]+)|(.*)$")
    local live = till and tonumber(till) and tonumber(till) > now
    local was = "queued"
    if holder == "approval" then
        was = "waiting for approval"
    elseif holder == "child" then
        was = "waiting for its child run"
    elseif holder == "retry" and live then
        was = "waiting for its retry"
    elseif live and holder and holder ~= "retry" and holder ~= "republished" then
        was = "running"
        reply[#reply + 1] = holder
    end
    cut[#cut + 1] = {node = token["to_node"], scope = token["scope"], was = was}
    if was ~= "queued" then
        redis.call("RPUSH", KEYS[2], cjson.encode({
            type = "node_cancelled", node = token["to_node"], t = tonumber(ARGV[2]),
            scope = token["scope"], was = was, token = pending[i],
            error = "cancelled while " .. was .. " (" .. ARGV[1] .. ")",
        }))
    end
end
redis.call("HSET", KEYS[1], "state", "cancelled", "error", ARGV[1])
redis.call("ZADD", KEYS[5], "LT", ARGV[5], ARGV[4])
local evt = cjson.decode(ARGV[3])
if #cut > 0 then
    evt["cut_short"] = cut
end
redis.call("RPUSH", KEYS[2], cjson.encode(evt))
return reply
