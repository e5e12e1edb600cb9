-- Per job in a retry storm [$t0, $t1): the invocations that delivered it, by job id.
SELECT job_id, count(DISTINCT invocation_id) AS n
FROM deliveries
WHERE ts_ms >= $t0 AND ts_ms < $t1
GROUP BY job_id
ORDER BY job_id
