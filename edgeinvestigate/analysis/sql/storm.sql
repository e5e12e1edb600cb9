-- The deliveries of one retry storm [$t0, $t1): how many, how many retried, of how many jobs, the
-- highest attempt.
SELECT
    count(*) AS deliveries,
    count(*) FILTER (WHERE attempt >= 2) AS retried,
    count(DISTINCT job_id) FILTER (WHERE attempt >= 2) AS jobs,
    max(attempt) AS max_attempt
FROM deliveries
WHERE ts_ms >= $t0 AND ts_ms < $t1
