-- One row per job delivery (job id, attempt, invocation) from the log lines that carry a job id and
-- an attempt (log_jobs: log_jobs.sql); time and job type of its first line.
SELECT
    job_id,
    attempt,
    invocation_id,
    arg_min_null(ts_ms, pos) AS ts_ms,
    arg_min_null(job_type, pos) AS job_type,
    min(pos) AS pos
FROM log_jobs
WHERE job_id IS NOT NULL AND attempt IS NOT NULL
GROUP BY job_id, attempt, invocation_id
