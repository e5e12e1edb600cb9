-- Per job type: the distinct (invocation, job, job type) triples of the log lines, overall and among
-- the invocations that hit a limit (relation limit_hit_ids), and where each first appears
-- (log_jobs: log_jobs.sql).
WITH d AS (
    SELECT invocation_id, job_id, job_type, min(pos) AS pos
    FROM log_jobs
    WHERE job_type IS NOT NULL
    GROUP BY invocation_id, job_id, job_type
),
marked AS (
    SELECT d.*, h.invocation_id IS NOT NULL AS inside
    FROM d LEFT JOIN (SELECT DISTINCT invocation_id FROM limit_hit_ids) AS h ON h.invocation_id = d.invocation_id
)
SELECT
    job_type,
    count(*) AS n_all,
    min(pos) AS first_all,
    count(*) FILTER (WHERE inside) AS n_inside,
    min(pos) FILTER (WHERE inside) AS first_inside
FROM marked
GROUP BY job_type
