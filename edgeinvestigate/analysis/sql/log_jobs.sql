-- The log lines reduced to what the invocation and delivery aggregates need, in one pass over the
-- logs: per (invocation, job id, job type, attempt), the first line (position) and its time.
SELECT
    invocation_id,
    job_id,
    job_type,
    attempt,
    min(pos) AS pos,
    arg_min_null(ts_ms, pos) AS ts_ms
FROM logs
WHERE job_id IS NOT NULL OR job_type IS NOT NULL
GROUP BY invocation_id, job_id, job_type, attempt
