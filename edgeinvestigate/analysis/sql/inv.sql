-- One row per invocation with a time (the analysis's "inv"): its effective version (its
-- script_version, else the version its log lines name: relation log_versions), where the version
-- came from, the first job type its log lines name (else 'unknown'), and "failed" by the one
-- definition: the runtime says so, or it threw or logged an error-level line (relation errors).
-- log_jobs: log_jobs.sql.
WITH job_types AS (
    SELECT invocation_id, arg_min_null(job_type, pos) AS job_type
    FROM log_jobs
    WHERE invocation_id IS NOT NULL AND job_type IS NOT NULL
    GROUP BY invocation_id
),
failures AS (
    SELECT DISTINCT invocation_id
    FROM errors
    WHERE level IN ('exception', 'error') AND invocation_id IS NOT NULL
)
SELECT
    i.pos,
    i.invocation_id,
    i.ts_ms,
    i.script,
    coalesce(i.script_version, v.version) AS script_version,
    CASE
        WHEN i.script_version IS NOT NULL THEN 'script_version'
        WHEN v.version IS NOT NULL THEN 'log_field'
    END AS version_source,
    i.trigger,
    i.queue,
    coalesce(i.outcome, 'unknown') AS outcome,
    coalesce(i.failed, false) OR f.invocation_id IS NOT NULL AS failed,
    i.cpu_ms,
    i.wall_ms,
    coalesce(j.job_type, 'unknown') AS job_type
FROM invocations AS i
LEFT JOIN log_versions AS v ON v.invocation_id = i.invocation_id
LEFT JOIN job_types AS j ON j.invocation_id = i.invocation_id
LEFT JOIN failures AS f ON f.invocation_id = i.invocation_id
WHERE i.ts_ms IS NOT NULL

