-- Each cluster's error rows around one deploy at $at (milliseconds) of script $script (or of any script: $any_script):
-- in the window before and after it, whether any came before it, the first one, and the share of the
-- rows with a known version that ran $version.
SELECT
    cluster_id,
    count(*) FILTER (WHERE ts_ms >= $at - $w AND ts_ms < $at) AS before,
    count(*) FILTER (WHERE ts_ms >= $at AND ts_ms < $at + $w) AS after,
    coalesce(bool_or(ts_ms < $at), false) AS ever_before,
    min(ts_ms) AS first_ms,
    count(script_version) AS known,
    count(*) FILTER (WHERE script_version = $version) AS on_version
FROM errors
WHERE $any_script OR script IS NULL OR script = $script
GROUP BY cluster_id
ORDER BY cluster_id
