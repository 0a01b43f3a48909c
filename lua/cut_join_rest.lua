--[[
cut_join_rest: a join with join_rest "cancel" fired: cut short the branches that only
feed it (docs/dsl.md, "Join rules"), so the run does not wait for them. Run by the join's
own delivery once it holds the join's input; running it again cuts nothing new.

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  counter   wfr:{<run_id>}:counter
KEYS[3]  pending   wfr:{<run_id>}:pending   token key -> JSON token (the outbox)
KEYS[4]  running   wfr:{<run_id>}:running   token key -> "<until>|<holder>"
KEYS[5]  events    wfr:{<run_id>}:events
KEYS[6]  joins     wfr:{<run_id>}:joins     (see join_arrive.lua)

ARGV[1]  epoch     the run's generation the delivery began in (see begin_node.lua)
ARGV[2]  join      the join's node id
ARGV[3]  scope     the join instance's scope: only tokens of that scope are cut
ARGV[4]  now       seconds since the epoch (the events' time)
ARGV[5]  reason    the node_skipped events' reason
ARGV[6..] cut      the join's feeders (IR join.cut)

Each pending token to a feeder in that scope leaves the outbox and the counter (its
delivery, or a running one's commit, then finds it not pending and does nothing), with a
node_skipped event {node, scope, token, cut: true, was: "queued" or "running", reason}.
A join among the feeders left with some of its arrivals is marked "#cut" (its instance
waits for nothing: the completion check does not count it as left waiting).

Returns {state, cut, holders...}: state "running", or the run's state, "stale" when the
run was rebuilt since the delivery began (nothing written); cut the tokens cut; holders
the lease holders of the running deliveries cut ("<uuid>@<task id>": the caller revokes
their tasks).
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then -- paused: the join's delivery began before
    return {state or "gone", 0}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[1] then
    return {"stale", 0}
end
local feeders = {}
for i = 6, #ARGV do
    feeders[ARGV[i]] = true
end
local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local reply = {"running", 0}
local cut = 0
local pending = redis.call("HGETALL", KEYS[3])
for i = 1, #pending, 2 do
    local token = cjson.decode(pending[i + 1])
    if feeders[token["to_node"]] and (token["scope"] or "") == ARGV[3] then
        local entry = redis.call("HGET", KEYS[4], pending[i]) or ""
        local till, holder = string.match(entry, "^([^|]+)|(.*)$")
        local was = "queued"
        if till and tonumber(till) and tonumber(till) > now and holder ~= "retry"
            and holder ~= "republished" and holder ~= "approval" then
            was = "running"
            reply[#reply + 1] = holder
        end
        redis.call("HDEL", KEYS[3], pending[i])
        redis.call("HDEL", KEYS[4], pending[i])
        redis.call("RPUSH", KEYS[5], cjson.encode({
            type = "node_skipped", node = token["to_node"], t = tonumber(ARGV[4]),
            scope = token["scope"], token = token, cut = true, was = was,
            reason = ARGV[5],
        }))
        cut = cut + 1
    end
end
if cut > 0 then
    redis.call("DECRBY", KEYS[2], cut)
end
for name in pairs(feeders) do
    local instance = name .. "|" .. ARGV[3]
    if redis.call("HEXISTS", KEYS[6], instance .. "#n") == 1 then
        redis.call("HSETNX", KEYS[6], instance .. "#cut", ARGV[2])
    end
end
reply[2] = cut
return reply
