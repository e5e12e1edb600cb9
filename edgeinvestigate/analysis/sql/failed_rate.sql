-- Invocations and failed invocations per bucket and job type.
SELECT (ts_ms // $bucket_ms) * $bucket_ms AS bucket_ms, job_type, count(*) AS n, count(*) FILTER (WHERE failed) AS failed
FROM inv
GROUP BY bucket_ms, job_type
ORDER BY bucket_ms, job_type
