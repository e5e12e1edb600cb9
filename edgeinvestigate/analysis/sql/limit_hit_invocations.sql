-- The invocations that hit a limit (a limit outcome) or ran near the wall-time limit.
SELECT invocation_id, ts_ms
FROM inv
WHERE outcome IN ('exceededCpu', 'exceededMemory', 'exceededWallTime') OR coalesce(wall_ms >= $wall_near, false)
ORDER BY pos
