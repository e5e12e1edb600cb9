-- Per Worker (its script; without a script name, what invoked it: trigger and queue) and version:
-- where the version first appears (time, then frame order) and how many invocations ran it.
SELECT
    script,
    CASE WHEN script IS NULL THEN coalesce(trigger, '?') || '/' || coalesce(queue, '') END AS unnamed,
    script_version,
    arg_min_null(version_source, [ts_ms, pos]) AS version_source,
    min([ts_ms, pos]) AS first_key,
    count(*) AS n
FROM inv
WHERE script_version IS NOT NULL
GROUP BY ALL
