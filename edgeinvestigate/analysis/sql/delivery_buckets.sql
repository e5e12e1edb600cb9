-- Deliveries and retried deliveries (attempt >= 2) per bucket.
SELECT (ts_ms // $bucket_ms) * $bucket_ms AS bucket_ms, count(*) AS n, count(*) FILTER (WHERE attempt >= 2) AS r
FROM deliveries
WHERE ts_ms IS NOT NULL
GROUP BY 1
ORDER BY 1
