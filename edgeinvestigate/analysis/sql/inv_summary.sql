-- The invocations' window and failed count.
SELECT count(*) AS n, count(*) FILTER (WHERE failed) AS failed, min(ts_ms) AS ts_min, max(ts_ms) AS ts_max
FROM inv
