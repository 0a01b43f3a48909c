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
KEYS[8]  pending   wfr:{<run_id>}:pending   token key -> JSON token (emitted, not consumed)
KEYS[9]  running   wfr:{<run_id>}:running   token key -> when its delivery began
KEYS[10] joins     wfr:{<run_id>}:joins
KEYS[11] checks    wfr:{<run_id>}:checks    completion checks counted (see completion_view.lua)
KEYS[12] due       wfr:{<slot tag>}:due     the due index of the run's slot (wfrunner/reconciler.py)

ARGV[1]  op_key       the consumed token's op key
ARGV[2]  delta        emitted tokens (arrivals included) - 1; a join arrival consumed by
                      its own delivery (see executor.py) that does not fire: -1
ARGV[3]  token_key    identity of the consumed token
ARGV[4]  emits_json   JSON object {"by": nonce, "holder": lease holder,
                      "tokens": {token key: JSON token, ...}} where nonce identifies the
                      message (the Celery task id) and holder this delivery
ARGV[5]  run_id       PUBLISHed on the channel when the counter reaches 0
ARGV[6]  channel      the completion channel
ARGV[7]  node_id
ARGV[8]  output_ref   "" when the node stores no output (a join arrival, a skip)
ARGV[9]  output_json
ARGV[10] now          seconds since the epoch
ARGV[11] flush_every  seconds between flushes of the run's history to PostgreSQL
ARGV[12] epoch        the run's generation the delivery began in (see begin_node.lua)
ARGV[13] arrivals     JSON list of join arrivals: first the dead ones (paths not taken),
                      each {"instance": "<join>|<scope>", "from": node, "value": "-",
                      "expected": predecessors, "observed": the arrivals the caller read
                      there before this one}, then the emitted tokens that arrive at a
                      join, each {"token": key, "op": its advance op key, "instance",
                      "from", "value": payload ref, "expected", "event": its JSON
                      join_arrived event}
                      An arrival at a join with a rule (docs/dsl.md, "Join rules") also
                      carries "need": the live arrivals that fire it (0: a condition,
                      decided by the caller), and when the caller decided it, "observed"
                      with "fire" (it fires the join); see "Join rules" below
ARGV[14] checks_ttl   seconds the check count outlives its last check
ARGV[15] stall_after  seconds without activity after which the reconciler looks at the run
ARGV[16..] events     JSON events to append

A dead arrival's consequences (a fire token for the join it completes, or the join
skipped and the paths beyond it) were decided by the caller from the join's arrivals as
it read them: they are recorded only while the join still holds "observed" arrivals and
not this one, else nothing is written and the reply is {-1, 0, 0, "", "conflict", 0, 0, {}}
(another commit recorded an arrival there meanwhile: the caller reads and decides again).
An emitted token's arrival is recorded here, with the commit that emits it, as
join_arrive.lua would record it. Only the arrival that completes its join (its finisher) stays an emitted
token: it is put in the outbox and dispatched, and its delivery runs the join. Any other
arrival is consumed in this same commit (its op key applied, a commit record that emits
nothing stored for it, so a stray copy of it is dropped as already committed, its
join_arrived event appended after the given events, the delta lowered by one) and never
sent: no task runs for it. An arrival whose predecessor already arrived at that instance records nothing
and is consumed the same way (it can never fire the join a second time).

Join rules: at a join with a rule, the arrival that fires it is the one that brings its
live arrivals ("#live") to "need" while it has not fired ("#fin" unset), decided here;
the live arrivals in order are kept in "#order", and copied to "#at" when it fires (the
join's input: begin_node.lua). An arrival after it fired is consumed, its event marked
"late". A live arrival that would complete such a join without firing it is refused as a
conflict: the caller reads the join and commits it again with "observed" (it then also
skips the join and the paths beyond it). With "observed", the caller decided ("fire"),
checked as for dead arrivals. The live arrival that fires a rule join appends a
join_fired event {node, scope, t, from, ref} after the given events.

Returns {value, changed, hit_zero, emits_json, state, mine, flush_due, joins}:
  the run is not running   {-1, 0, 0, "", state or "gone", 0, 0, {}}: nothing written (a
                           paused run is running here: a node begun before the pause
                           commits, and "paused" is the state answered)
  the run was rebuilt      {-1, 0, 0, "", "stale", 0, 0, {}}: nothing written (the rebuilt
                           outbox holds the token again; its new delivery does the work)
  a join moved on          {-1, 0, 0, "", "conflict", 0, 0, {}}: nothing written (see above)
  token not pending        {-1, 0, 0, "", "not_pending", 0, 0, {}}: nothing written. The
                           outbox does not hold the token: Redis came back from a
                           snapshot taken before it was emitted (its emitter runs again
                           and emits it anew), so consuming it would count a token the
                           counter never had
  token already committed  {counter, 0, 0, the emits first recorded, "running", mine, 0, {}}
                           mine is 1 when the recorded commit carries this call's nonce
                           and lease holder: a client retry of this very call after a
                           lost reply, which should still dispatch (a second delivery of
                           the same message that began once this one's lease expired has
                           the nonce but not the holder: it is not mine)
  committed                {new counter, 1, 1 if it reached 0, the emits recorded (the
                            tokens actually emitted: ARGV[4] less consumed arrivals),
                            "running", 1, 1 when the run's history is due to be flushed,
                            and when it reached 0 the joins hash as a flat field/value
                            list: what the completion check reads (completion_view.lua),
                            counted as a check as it counts one, so the check needs no
                            round trip of its own}
Errors: the counter would go negative (nothing applied).
]]

local state = redis.call("HGET", KEYS[1], "state")
if state ~= "running" and state ~= "paused" then
    return {-1, 0, 0, "", state or "gone", 0, 0, {}}
end
if (redis.call("HGET", KEYS[1], "epoch") or "") ~= ARGV[12] then
    return {-1, 0, 0, "", "stale", 0, 0, {}}
end

local current = tonumber(redis.call("GET", KEYS[2]) or "0")
if redis.call("SISMEMBER", KEYS[3], ARGV[1]) == 1 then
    local recorded = redis.call("HGET", KEYS[6], ARGV[3]) or '{"by":"","tokens":{}}'
    local mine = 0
    local before, now_ = cjson.decode(recorded), cjson.decode(ARGV[4])
    if before["by"] == now_["by"] and before["holder"] == now_["holder"] then
        mine = 1
    end
    return {current, 0, 0, recorded, state, mine, 0, {}}
end

if redis.call("HEXISTS", KEYS[8], ARGV[3]) == 0 then
    return {-1, 0, 0, "", "not_pending", 0, 0, {}}
end

--- the commit record of an arrival consumed here: a copy of it is "already committed"
local CONSUMED_AT_EMISSION = '{"by":"","holder":"","tokens":{}}'
local delta = tonumber(ARGV[2])
local record = cjson.decode(ARGV[4])
local arrivals = cjson.decode(ARGV[13])
local consumed = {}
local fins = {}
local added = {}
for _, a in ipairs(arrivals) do
    local field = a["instance"] .. "|" .. a["from"]
    local before = tonumber(redis.call("HGET", KEYS[10], a["instance"] .. "#n") or "0")
        + (added[a["instance"]] or 0)
    local ruled = a["need"] ~= nil
    if a["observed"] then
        if before ~= tonumber(a["observed"]) or redis.call("HEXISTS", KEYS[10], field) == 1 then
            return {-1, 0, 0, "", "conflict", 0, 0, {}}
        end
        if ruled then
            if a["fire"] then
                fins[#fins + 1] = a
            elseif a["token"] then
                consumed[#consumed + 1] = a
            end
        elseif before + 1 >= tonumber(a["expected"]) then
            fins[#fins + 1] = a
        end
        a["record"] = true
        added[a["instance"]] = (added[a["instance"]] or 0) + 1
    elseif redis.call("HEXISTS", KEYS[10], field) == 1 then
        consumed[#consumed + 1] = a
    elseif ruled then
        local fired = redis.call("HEXISTS", KEYS[10], a["instance"] .. "#fin") == 1
        local live = tonumber(redis.call("HGET", KEYS[10], a["instance"] .. "#live") or "0")
        if not fired and live + 1 >= tonumber(a["need"]) then
            fins[#fins + 1] = a
        elseif not fired and before + 1 >= tonumber(a["expected"]) then
            return {-1, 0, 0, "", "conflict", 0, 0, {}}
        else
            a["late"] = fired
            consumed[#consumed + 1] = a
        end
        a["record"] = true
        added[a["instance"]] = (added[a["instance"]] or 0) + 1
    else
        if before + 1 >= tonumber(a["expected"]) then
            fins[#fins + 1] = a
        else
            consumed[#consumed + 1] = a
        end
        a["record"] = true
        -- a dead arrival listed after it (beyond a join with a rule that closed) counts it
        added[a["instance"]] = (added[a["instance"]] or 0) + 1
    end
end
delta = delta - #consumed
if current + delta < 0 then
    return redis.error_reply("ERR commit_node: counter would go negative (value "
        .. current .. ", delta " .. delta .. ")")
end

for _, a in ipairs(arrivals) do
    if a["record"] then
        redis.call("HSET", KEYS[10], a["instance"] .. "|" .. a["from"], a["value"])
        redis.call("HINCRBY", KEYS[10], a["instance"] .. "#n", 1)
        if a["need"] ~= nil and a["value"] ~= "-" then
            redis.call("HINCRBY", KEYS[10], a["instance"] .. "#live", 1)
            local order = redis.call("HGET", KEYS[10], a["instance"] .. "#order")
            redis.call("HSET", KEYS[10], a["instance"] .. "#order",
                order and (order .. "," .. a["from"]) or a["from"])
        end
    end
end
local fired_events = {}
for _, a in ipairs(fins) do
    local first = redis.call("HSETNX", KEYS[10], a["instance"] .. "#fin", a["from"])
    if first == 1 and a["need"] ~= nil then
        redis.call("HSET", KEYS[10], a["instance"] .. "#at",
            redis.call("HGET", KEYS[10], a["instance"] .. "#order") or "")
        if a["event"] then
            -- join_fired, not join_arrived: its token is not consumed here (it is sent)
            local evt = cjson.decode(a["event"])
            fired_events[#fired_events + 1] = cjson.encode({
                type = "join_fired", node = evt["node"], scope = evt["scope"], t = evt["t"],
                from = a["from"], ref = a["value"],
            })
        end
    end
end
for _, a in ipairs(consumed) do
    record["tokens"][a["token"]] = nil
    redis.call("SADD", KEYS[3], a["op"])
    redis.call("HSET", KEYS[6], a["token"], CONSUMED_AT_EMISSION)
end
local recorded = ARGV[4]
if #consumed > 0 then
    recorded = cjson.encode(record)
end

if ARGV[8] ~= "" then
    redis.call("HSETNX", KEYS[4], ARGV[8], ARGV[9])
    redis.call("HSET", KEYS[5], ARGV[7], ARGV[8])
end
local value = redis.call("INCRBY", KEYS[2], delta)
redis.call("SADD", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[6], ARGV[3], recorded)
redis.call("HDEL", KEYS[8], ARGV[3])
redis.call("HDEL", KEYS[9], ARGV[3])
for key, token in pairs(record["tokens"]) do
    redis.call("HSET", KEYS[8], key, token)
end
for i = 16, #ARGV do
    redis.call("RPUSH", KEYS[7], ARGV[i])
end
for _, a in ipairs(consumed) do
    if a["late"] then
        redis.call("RPUSH", KEYS[7], '{"late":true,' .. string.sub(a["event"], 2))
    else
        redis.call("RPUSH", KEYS[7], a["event"])
    end
end
for _, text in ipairs(fired_events) do
    redis.call("RPUSH", KEYS[7], text)
end
redis.call("HSET", KEYS[1], "activity", ARGV[10])

local flush_due = 0
local now = tonumber(ARGV[10])
if now >= tonumber(redis.call("HGET", KEYS[1], "flush_at") or "0") then
    redis.call("HSET", KEYS[1], "flush_at", now + tonumber(ARGV[11]))
    flush_due = 1
    -- at most once a flush interval, the run's next look moves on: when it would be idle,
    -- or sooner, when an entry of its running hash falls due (a lease a dead worker no
    -- longer renews, a retry, an approval's deadline)
    local look = now + tonumber(ARGV[15])
    for _, entry in ipairs(redis.call("HVALS", KEYS[9])) do
        local till = tonumber(string.match(entry, "^([^|]+)|"))
        if till and till < look then
            look = till
        end
    end
    redis.call("ZADD", KEYS[12], look, ARGV[5])
end

local hit_zero = 0
local joins = {}
if value == 0 and delta < 0 then
    hit_zero = 1
    redis.call("PUBLISH", ARGV[6], ARGV[5])
    redis.call("INCR", KEYS[11])
    redis.call("EXPIRE", KEYS[11], ARGV[14])
    joins = redis.call("HGETALL", KEYS[10])
end
return {value, 1, hit_zero, recorded, state, 1, flush_due, joins}
