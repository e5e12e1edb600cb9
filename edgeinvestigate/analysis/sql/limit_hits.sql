-- Per limit: the invocations that exceeded it or came near it, their job types, scripts and window.
WITH checks AS (
    SELECT
        *,
        CASE
            WHEN outcome IN ('exceededCpu', 'exceededMemory', 'exceededWallTime') THEN outcome
        END AS exceeded,
        coalesce(wall_ms >= $wall_near, false) AND outcome <> 'exceededWallTime' AS wall_near,
        coalesce(cpu_ms >= $cpu_near, false) AND outcome <> 'exceededCpu' AS cpu_near
    FROM inv
),
hits AS (
    SELECT exceeded AS limit_name, job_type, script, ts_ms FROM checks WHERE exceeded IS NOT NULL
    UNION ALL
    SELECT 'wall_near_limit', job_type, script, ts_ms FROM checks WHERE wall_near
    UNION ALL
    SELECT 'cpu_near_limit', job_type, script, ts_ms FROM checks WHERE cpu_near
)
SELECT
    limit_name,
    count(*) AS n,
    list(DISTINCT job_type) FILTER (WHERE job_type <> 'unknown') AS job_types,
    list(DISTINCT script) FILTER (WHERE script IS NOT NULL) AS scripts,
    min(ts_ms) AS ts_min,
    max(ts_ms) AS ts_max
FROM hits
GROUP BY limit_name
