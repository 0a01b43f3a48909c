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
ARGV[7]  need      a join with a rule (docs/dsl.md, "Join rules"): the live arrivals that
                   fire it ("0" for a condition); "" or absent for a join that waits for all
ARGV[8]  decided   a condition join: "fire" or "hold", as the caller decided from the
                   arrivals it read; "" for a rule decided here
ARGV[9]  observed  with ARGV[8]: the arrivals ("#n") the caller read; another count
                   records nothing and answers state "conflict" (the caller reads again)

Returns {state, complete, finisher}: state as begin_node (a paused run records the
arrival of a delivery begun before the pause), or "stale" when the run was
rebuilt since the delivery began, or "not_pending" when the delivery's token is not in the
outbox (Redis came back from a snapshot taken before it was emitted; see commit_node.lua),
nothing recorded in both cases; complete 1 when every
predecessor has arrived; finisher the predecessor whose arrival completed the join.
Repeating an arrival (a redelivery) records nothing new and returns the same answer, so
exactly one predecessor is ever the finisher and the join fires once.
A join with a rule returns {state, complete, finisher, closer, at}: its finisher is the
arrival that brought its live arrivals ("#live") to need (or that the caller decided fires
it), and "#at" the live arrivals then, in order (see commit_node.lua); complete is 1 once
it fired or every predecessor arrived; closer ("#closed") the arrival that completed it
without its rule ever holding: that delivery skips the join.
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {"gone", 0, ""}
end
if state ~= "running" and state ~= "paused" then
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
if ARGV[7] and ARGV[7] ~= "" then
    local fin = redis.call("HGET", KEYS[2], instance .. "#fin")
    if redis.call("HEXISTS", KEYS[2], instance .. "|" .. ARGV[2]) == 0 then
        n = tonumber(redis.call("HGET", KEYS[2], instance .. "#n") or "0")
        if ARGV[8] ~= "" and n ~= tonumber(ARGV[9]) then
            return {"conflict", 0, "", "", ""}
        end
        redis.call("HSET", KEYS[2], instance .. "|" .. ARGV[2], ARGV[3])
        n = redis.call("HINCRBY", KEYS[2], instance .. "#n", 1)
        local live = tonumber(redis.call("HGET", KEYS[2], instance .. "#live") or "0")
        if ARGV[3] ~= "-" then
            live = redis.call("HINCRBY", KEYS[2], instance .. "#live", 1)
            local order = redis.call("HGET", KEYS[2], instance .. "#order")
            redis.call("HSET", KEYS[2], instance .. "#order",
                order and (order .. "," .. ARGV[2]) or ARGV[2])
        end
        if not fin then
            local fires = ARGV[8] == "fire"
                or (ARGV[8] == "" and ARGV[3] ~= "-" and live >= tonumber(ARGV[7]))
            if fires then
                fin = ARGV[2]
                redis.call("HSET", KEYS[2], instance .. "#fin", fin)
                redis.call("HSET", KEYS[2], instance .. "#at",
                    redis.call("HGET", KEYS[2], instance .. "#order") or "")
            elseif n >= expected then
                redis.call("HSETNX", KEYS[2], instance .. "#closed", ARGV[2])
            end
        end
    else
        n = tonumber(redis.call("HGET", KEYS[2], instance .. "#n") or "0")
    end
    local complete = 0
    if fin or n >= expected then
        complete = 1
    end
    return {state, complete, fin or "", redis.call("HGET", KEYS[2], instance .. "#closed") or "",
        redis.call("HGET", KEYS[2], instance .. "#at") or ""}
end
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
