-- A new run, RUNNING, with its statistics row and its first events (the entry tokens: the
-- run's recovery point), in one statement (one round trip).
--
-- Nothing is written when a run with this id exists (a start message delivered again, or a
-- run the client recorded QUEUED): no row comes back and the caller takes the slower path.
-- The hot state made after this commit is generation 1.
--
-- Parameters: :run_id, :workflow_id, :counter_value, :inputs (JSON), :status, and
-- :events, a JSON array [{type, node_id, data}] numbered from 1.
WITH run AS (
    INSERT INTO runs (id, workflow_id, status, counter_value, inputs, hot_gen, event_seq,
                      started_at, last_activity_at)
    VALUES (:run_id, :workflow_id, :status, :counter_value, CAST(:inputs AS jsonb), 1,
            jsonb_array_length(CAST(:events AS jsonb)), now(), now())
    ON CONFLICT (id) DO NOTHING
    RETURNING *
),
statistics AS (
    INSERT INTO run_statistics (run_id) SELECT id FROM run
),
first_events AS (
    INSERT INTO event_log (run_id, seq, type, node_id, data)
    SELECT run.id, e.n, e.v ->> 'type', e.v ->> 'node_id', e.v -> 'data'
    FROM run, jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e (v, n)
)
SELECT * FROM run
