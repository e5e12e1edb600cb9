-- The invocations whose id is that of an invocation that hit a limit (a limit outcome) or ran near
-- the wall-time limit.
SELECT invocation_id, ts_ms
FROM inv
WHERE invocation_id IN (
    SELECT invocation_id
    FROM inv
    WHERE invocation_id IS NOT NULL
      AND (outcome IN ('exceededCpu', 'exceededMemory', 'exceededWallTime') OR coalesce(wall_ms >= $wall_near, false))
)
ORDER BY pos
