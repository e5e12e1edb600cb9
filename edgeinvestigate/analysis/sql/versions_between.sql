-- The versions one Worker ran in [$t0, $t1) (milliseconds), how often, and where each first appears.
SELECT script_version, count(*) AS n, min([ts_ms, pos]) AS first_key
FROM inv
WHERE script_version IS NOT NULL
  AND ts_ms >= $t0 AND ts_ms < $t1
  AND CASE
        WHEN $named THEN script = $script
        ELSE script IS NULL AND coalesce(trigger, '?') || '/' || coalesce(queue, '') = $unnamed
      END
GROUP BY script_version
