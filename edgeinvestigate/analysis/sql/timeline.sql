-- Invocations and failed invocations per bucket, job type and outcome.
SELECT (ts_ms // $bucket_ms) * $bucket_ms AS bucket_ms, job_type, outcome, count(*) AS n, count(*) FILTER (WHERE failed) AS failed
FROM inv
GROUP BY bucket_ms, job_type, outcome
ORDER BY bucket_ms, job_type, outcome
