-- CPU and wall time percentiles (linear interpolation), limit outcomes, invocations near the limits.
-- The percentiles of a column come from one quantile state (a list of three): a state holds every
-- value of the column, and DuckDB does not spill it.
SELECT
    cpu_q[1] AS cpu_p50,
    cpu_q[2] AS cpu_p95,
    cpu_q[3] AS cpu_p99,
    cpu_max,
    wall_q[1] AS wall_p50,
    wall_q[2] AS wall_p95,
    wall_q[3] AS wall_p99,
    wall_max,
    exceeded_cpu,
    exceeded_memory,
    exceeded_wall,
    cpu_near_limit,
    wall_near_limit
FROM (
    SELECT
        quantile_cont(cpu_ms, [0.5, 0.95, 0.99]) AS cpu_q,
        max(cpu_ms) AS cpu_max,
        quantile_cont(wall_ms, [0.5, 0.95, 0.99]) AS wall_q,
        max(wall_ms) AS wall_max,
        count(*) FILTER (WHERE outcome = 'exceededCpu') AS exceeded_cpu,
        count(*) FILTER (WHERE outcome = 'exceededMemory') AS exceeded_memory,
        count(*) FILTER (WHERE outcome = 'exceededWallTime') AS exceeded_wall,
        count(*) FILTER (WHERE cpu_ms >= $cpu_near) AS cpu_near_limit,
        count(*) FILTER (WHERE wall_ms >= $wall_near) AS wall_near_limit
    FROM inv
)
