--[[
begin_node: everything a node task needs before it runs, in one round trip.

KEYS[1]  meta      wfr:{<run_id>}:meta
KEYS[2]  emits     wfr:{<run_id>}:emits     hash: token key -> JSON of the tokens it emitted
KEYS[3]  payloads  wfr:{<run_id>}:payloads  hash: ref -> canonical JSON
KEYS[4]  events    wfr:{<run_id>}:events
KEYS[5]  attempts  wfr:{<run_id>}:attempts  hash: token key -> deliveries that began it
KEYS[6]  running   wfr:{<run_id>}:running   hash: token key -> "<until>|<holder>" lease
                                            (see wfrunner/engine/leases.py)
KEYS[7]  pending   wfr:{<run_id>}:pending   hash: token key -> JSON token (the outbox)
KEYS[8]  joins     wfr:{<run_id>}:joins     join arrivals (see join_arrive.lua)
KEYS[9]  ctx       wfr:{<run_id>}:ctx       hash: node id -> ref of its latest output

ARGV[1]  token_key    identity of the consumed token (see wfrunner.engine.tokens)
ARGV[2]  payload_ref  the token's input payload ref, or "" for none
ARGV[3]  event        JSON node_started event to append, or "" for none
ARGV[4]  now          seconds since the epoch (the caller's clock: run activity)
ARGV[5]  holder       this delivery's lease holder id (unique per delivery)
ARGV[6]  lease        seconds the lease lasts unless renewed (Redis's clock: TIME)
ARGV[7]  want_inputs  "1" to have the run's inputs returned, "" when the node does not
                      read them (they can be large, and every node would carry them)
ARGV[8]  want_ctx     "1" to have the CEL ``ctx`` returned (only nodes that read it)
ARGV[9]  join         for a token arriving at a join: the instance "<node>|<scope>", else ""
ARGV[10] from         the token's predecessor (a join token)
ARGV[11..] deps       the join's predecessors, in order (a join token)

Returns {state, committed, input, inputs, attempt, epoch, busy, ctx}:
  state      "running", or "paused" (wfrunner pause: nothing is written, the token stays
             pending and this delivery is no attempt; the resume publishes it again), or
             the run's end state, or "gone" when the run has no hot state
             (it ended and was cleaned up), or "not_pending" when the token was neither
             committed nor is pending: it was never emitted here (Redis came back from a
             snapshot taken before the commit that emitted it, or the message is forged),
             so its node must not run; the caller then drops the token
  committed  the commit record ({"by": nonce, "tokens": {...}}) of an earlier delivery
             of this token, or "" when the token has not been committed; the caller
             re-dispatches the recorded tokens only when it is the same delivery ("by" is
             its nonce: the message came back after its worker died between commit and
             dispatch, or the task retried after losing the commit's reply)
  input      the payload under payload_ref ("" when none was asked for); for a join
             token: the join's input, the JSON object {predecessor: output} of its live
             arrivals in ARGV[11..] order (a join with a rule: only those in "#at",
             the live arrivals when it fired), when the join is complete and ARGV[10] is its
             finisher (the token fires the join), else "" (the arrival is not recorded
             yet: the delivery records it with join_arrive.lua)
  inputs     the run's inputs JSON ("" unless ARGV[7] asks for it)
  ctx        the JSON object {node id: latest output} ("" unless ARGV[8] asks for it)
  attempt    this delivery's number (1 for the first); the caller fails the node when a
             token keeps being delivered (its worker dies every time)
  epoch      the run's hot-state generation (changes when it is rebuilt from PostgreSQL);
             the delivery passes it to join_arrive and commit_node, which refuse it once
             the run was rebuilt meanwhile: what the delivery did before is lost
  busy       "" when this delivery took the token's lease; else the seconds (text) the
             live lease of another delivery still lasts: this delivery must not run the
             node (its handler is running elsewhere) and is not counted as an attempt
Nothing is written unless the run is running, the token is not yet committed and no
other delivery holds a live lease on it; the lease is then taken for ARGV[6] seconds, and
the node_started event is appended with its "attempt" field set by this script. Entries
of the running hash that are not delivery leases (a retry's due time, a republish mark,
a human node's waiting approval, a subworkflow node's waiting child) do not stop a
delivery.
]]

local state = redis.call("HGET", KEYS[1], "state")
if not state then
    return {"gone", "", "", "", 0, "", "", ""}
end
if state ~= "running" then
    return {state, "", "", "", 0, "", "", ""}
end
local epoch = redis.call("HGET", KEYS[1], "epoch") or ""

local committed = redis.call("HGET", KEYS[2], ARGV[1])
if committed then
    return {state, committed, "", "", 0, epoch, "", ""}
end

if redis.call("HEXISTS", KEYS[7], ARGV[1]) == 0 then
    return {"not_pending", "", "", "", 0, epoch, "", ""}
end

local clock = redis.call("TIME")
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease = redis.call("HGET", KEYS[6], ARGV[1])
if lease then
    local till, holder = string.match(lease, "^([^|]+)|(.*)$")
    local delivery = holder and holder ~= ARGV[5] and holder ~= "retry"
        and holder ~= "republished" and holder ~= "approval" and holder ~= "child"
    if delivery and tonumber(till) and tonumber(till) > now then
        return {state, "", "", "", 0, epoch, string.format("%.3f", tonumber(till) - now), ""}
    end
end

local input = ""
if ARGV[9] ~= "" then
    if redis.call("HGET", KEYS[8], ARGV[9] .. "#fin") == ARGV[10] then
        local parts = {}
        -- a join with a rule takes the live arrivals in when it fired ("#at"), no later one
        local names = {}
        local at = redis.call("HGET", KEYS[8], ARGV[9] .. "#at")
        local fired = {}
        if at then
            for name in string.gmatch(at, "[^,]+") do
                fired[name] = true
            end
        end
        for i = 11, #ARGV do
            if not at or fired[ARGV[i]] then
                names[#names + 1] = ARGV[i]
            end
        end
        for _, name in ipairs(names) do
            local ref = redis.call("HGET", KEYS[8], ARGV[9] .. "|" .. name)
            if ref and ref ~= "-" then
                local text = redis.call("HGET", KEYS[3], ref)
                if not text then
                    return redis.error_reply("ERR begin_node: payload " .. ref .. " is missing")
                end
                parts[#parts + 1] = cjson.encode(name) .. ":" .. text
            end
        end
        input = "{" .. table.concat(parts, ",") .. "}"
    end
elseif ARGV[2] ~= "" then
    input = redis.call("HGET", KEYS[3], ARGV[2])
    if not input then
        return redis.error_reply("ERR begin_node: payload " .. ARGV[2] .. " is missing")
    end
end
local attempt = redis.call("HINCRBY", KEYS[5], ARGV[1], 1)
-- whole milliseconds, rounded down: "%.3f" alone may round the end up past the next
-- TIME, so a lease of 0 s (a delivery that died at once) could still look live
local till = math.floor((now + tonumber(ARGV[6])) * 1000) / 1000
redis.call("HSET", KEYS[6], ARGV[1], string.format("%.3f|%s", till, ARGV[5]))
if ARGV[3] ~= "" then
    local evt = cjson.decode(ARGV[3])
    evt["attempt"] = attempt
    redis.call("RPUSH", KEYS[4], cjson.encode(evt))
end
redis.call("HSET", KEYS[1], "activity", ARGV[4])
local inputs = ""
if ARGV[7] == "1" then
    inputs = redis.call("HGET", KEYS[1], "inputs") or "null"
end
local ctx = ""
if ARGV[8] == "1" then
    local parts = {}
    local refs = redis.call("HGETALL", KEYS[9])
    for i = 1, #refs, 2 do
        local text = redis.call("HGET", KEYS[3], refs[i + 1]) or "null"
        parts[#parts + 1] = cjson.encode(refs[i]) .. ":" .. text
    end
    ctx = "{" .. table.concat(parts, ",") .. "}"
end
return {state, "", input, inputs, attempt, epoch, "", ctx}
