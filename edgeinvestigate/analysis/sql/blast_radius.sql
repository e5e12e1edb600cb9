-- Error rows and distinct jobs per job type, queue, script and version ('unknown' when missing),
-- with where each value first appears.
WITH dims AS (
    SELECT 'job_type' AS dimension, coalesce(job_type, 'unknown') AS value, job_id, pos FROM errors
    UNION ALL
    SELECT 'queue', coalesce(queue, 'unknown'), job_id, pos FROM errors
    UNION ALL
    SELECT 'script', coalesce(script, 'unknown'), job_id, pos FROM errors
    UNION ALL
    SELECT 'script_version', coalesce(script_version, 'unknown'), job_id, pos FROM errors
)
SELECT dimension, value, count(*) AS n, count(DISTINCT job_id) AS jobs, min(pos) AS first
FROM dims
GROUP BY dimension, value
