--[[
join_arrive: record that one predecessor's token reached a join, live or dead, and tell
whether the join is complete and which arrival completed it (the one that fires it).
A live arrival is normally recorded by the commit that emits it (commit_node.lua, the
same fields); this script records dead arrivals (a path not taken) and the live arrival
of a token whose delivery finds it unrecorded (a run rebuilt from PostgreSQL, where only
the join's own commit names the arrival that completed it).

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  joins     wfr:{<run_id>}:joins     hash, per join instance <node>|<scope>:
                     "<node>|<scope>|<from>" -> payload ref of a live arrival, "-" if dead
                     "<node>|<scope>#n"      -> number of distinct arrivals
                     "<node>|<scope>#fin"    -> the predecessor whose arrival completed it
KEYS[3]  pending   wfr:{<run_id>}:pending   the outbox (token key -> JSON token)

ARGV[1]  instance  "<node>|<scope>"
ARGV[2]  from      the predecessor node id
ARGV[3]  value     payload ref of a live arrival, "-" for a dead one
ARGV[4]  expected  number of predecessors of the join
ARGV[5]  epoch     the run's generation the delivery began in (see begin_node.lua)
ARGV[6]  token     key of the token the delivery consumes ("" to skip the check)

Returns {state, complete, finisher}: state as begin_node, or "stale" when the run was
rebuilt since the delivery began, or "not_pending" when the delivery's token is not in the
outbox (Redis came back from a snapshot taken before it was emitted; see commit_node.lua),
nothing recorded in both cases; complete 1 when every
predecessor has arrived; finisher the predecessor whose arrival completed the join.
Repeating an arrival (a redelivery) records nothing new and returns the same answer, so
exactly one predecessor is ever the finisher and the join fires once.
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {"gone", 0, ""}
end
if state ~= "running" then
    return {state, 0, ""}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[5] then
    return {"stale", 0, ""}
end

if ARGV[6] and ARGV[6] ~= "" and redis.call("HEXISTS", KEYS[3], ARGV[6]) == 0 then
    return {"not_pending", 0, ""}
end

local instance = ARGV[1]
local expected = tonumber(ARGV[4])
local n
if redis.call("HSETNX", KEYS[2], instance .. "|" .. ARGV[2], ARGV[3]) == 1 then
    n = redis.call("HINCRBY", KEYS[2], instance .. "#n", 1)
    if n >= expected then
        redis.call("HSETNX", KEYS[2], instance .. "#fin", ARGV[2])
    end
else
    n = tonumber(redis.call("HGET", KEYS[2], instance .. "#n") or "0")
end
if n < expected then
    return {state, 0, ""}
end
return {state, 1, redis.call("HGET", KEYS[2], instance .. "#fin")}
