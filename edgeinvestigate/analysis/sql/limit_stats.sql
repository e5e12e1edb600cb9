-- CPU and wall time percentiles (linear interpolation), limit outcomes, invocations near the limits.
SELECT
    quantile_cont(cpu_ms, 0.5) AS cpu_p50,
    quantile_cont(cpu_ms, 0.95) AS cpu_p95,
    quantile_cont(cpu_ms, 0.99) AS cpu_p99,
    max(cpu_ms) AS cpu_max,
    quantile_cont(wall_ms, 0.5) AS wall_p50,
    quantile_cont(wall_ms, 0.95) AS wall_p95,
    quantile_cont(wall_ms, 0.99) AS wall_p99,
    max(wall_ms) AS wall_max,
    count(*) FILTER (WHERE outcome = 'exceededCpu') AS exceeded_cpu,
    count(*) FILTER (WHERE outcome = 'exceededMemory') AS exceeded_memory,
    count(*) FILTER (WHERE outcome = 'exceededWallTime') AS exceeded_wall,
    count(*) FILTER (WHERE cpu_ms >= $cpu_near) AS cpu_near_limit,
    count(*) FILTER (WHERE wall_ms >= $wall_near) AS wall_near_limit
FROM inv
