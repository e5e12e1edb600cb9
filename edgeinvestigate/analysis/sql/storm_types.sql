-- The job types of the retried deliveries in a retry storm [$t0, $t1).
SELECT job_type, count(*) AS n
FROM deliveries
WHERE ts_ms >= $t0 AND ts_ms < $t1 AND attempt >= 2 AND job_type IS NOT NULL
GROUP BY job_type
