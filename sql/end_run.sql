-- A run's end and the rest of its history, in one statement (one round trip).
--
-- `claim` moves the run's hot-state generation from :gen to :gen + 1 and records the end,
-- only while the run is active and PostgreSQL still holds :gen (the fence, see
-- wfrunner/fencing.py). Every other part joins `claim`: when the fence refuses, nothing is
-- written. Racing finishes queue on the run row's lock; the loser sees the moved generation
-- and writes nothing.
--
-- Parameters: :run_id, :gen, :status, :error (NULL keeps the run's), :last_seq, :active
-- (the active statuses), :checks (completion checks to add), and JSON arrays:
-- :events [{type, node_id, data}] numbered from :first_seq, :payloads [{ref, data, size}],
-- :executions [{node_id, iteration, attempt, status, output, error}], :loops {node: pass},
-- :stats {nodes_executed, nodes_skipped, tokens_emitted, tokens_consumed}.
-- Returns whether the claim held, the numbers of the events inserted (an event number
-- PostgreSQL already held is kept; the caller compares it with the one sent) and, when the
-- claim held, the ended run's row and statistics (its document is made from them).
WITH claim AS (
    UPDATE runs
    SET hot_gen = :gen + 1,
        status = :status,
        completed_at = now(),
        last_activity_at = now(),
        error = COALESCE(:error, error),
        event_seq = GREATEST(event_seq, :last_seq)
    WHERE id = :run_id AND status = ANY(:active) AND hot_gen = :gen
    RETURNING id, workflow_id, status, counter_value, inputs, error, event_seq, hot_gen,
              created_at, started_at, completed_at, last_activity_at, parent_run_id,
              parent_node, parent_token
),
new_events AS (
    INSERT INTO event_log (run_id, seq, type, node_id, data)
    SELECT claim.id, :first_seq + e.n - 1, e.v ->> 'type', e.v ->> 'node_id', e.v -> 'data'
    FROM claim, jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e (v, n)
    ON CONFLICT (run_id, seq) DO NOTHING
    RETURNING seq
),
new_payloads AS (
    INSERT INTO payloads (run_id, ref, data, size_bytes)
    SELECT claim.id, p.v ->> 'ref', p.v -> 'data', CAST(p.v ->> 'size' AS integer)
    FROM claim, jsonb_array_elements(CAST(:payloads AS jsonb)) AS p (v)
    ON CONFLICT DO NOTHING
),
executions AS (
    -- a run resumed from a dead letter ends a second time: its rows are brought up to date
    INSERT INTO node_executions
        (run_id, node_id, iteration, attempt, status, output, error, finished_at)
    SELECT claim.id, x.v ->> 'node_id', CAST(x.v ->> 'iteration' AS integer),
           CAST(x.v ->> 'attempt' AS integer), x.v ->> 'status', x.v -> 'output',
           x.v ->> 'error', now()
    FROM claim, jsonb_array_elements(CAST(:executions AS jsonb)) AS x (v)
    ON CONFLICT (run_id, node_id, iteration, attempt) DO UPDATE
    SET status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error
),
loops AS (
    INSERT INTO loop_state (run_id, node_id, iteration)
    SELECT claim.id, l.key, CAST(l.value AS integer)
    FROM claim, jsonb_each_text(CAST(:loops AS jsonb)) AS l
    ON CONFLICT (run_id, node_id) DO UPDATE SET iteration = EXCLUDED.iteration, updated_at = now()
),
statistics AS (
    UPDATE run_statistics AS s
    SET completion_checks = s.completion_checks + :checks,
        nodes_executed = COALESCE(CAST(st.v ->> 'nodes_executed' AS integer), s.nodes_executed),
        nodes_skipped = COALESCE(CAST(st.v ->> 'nodes_skipped' AS integer), s.nodes_skipped),
        tokens_emitted = COALESCE(CAST(st.v ->> 'tokens_emitted' AS integer), s.tokens_emitted),
        tokens_consumed = COALESCE(CAST(st.v ->> 'tokens_consumed' AS integer), s.tokens_consumed),
        updated_at = now()
    FROM claim, (SELECT CAST(:stats AS jsonb) AS v) AS st
    WHERE s.run_id = claim.id
    RETURNING s.completion_checks, s.nodes_executed, s.nodes_skipped, s.tokens_emitted,
              s.tokens_consumed
)
SELECT EXISTS (SELECT 1 FROM claim) AS claimed,
       ARRAY(SELECT seq FROM new_events) AS inserted,
       claim.*,
       statistics.*
FROM (SELECT 1) AS one
LEFT JOIN claim ON true
LEFT JOIN statistics ON true
