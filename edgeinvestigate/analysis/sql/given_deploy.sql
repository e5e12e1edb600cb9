-- For a given deployment at $at (milliseconds): the version of the last invocation with a version
-- before it, the invocations that ran its version, and the invocations in [$at, $until) (a far future $until: none).
SELECT
    (SELECT arg_max_null(script_version, [ts_ms, pos]) FROM inv
      WHERE script_version IS NOT NULL AND ts_ms < $at) AS last_before,
    (SELECT count(*) FROM inv WHERE script_version = $version) AS ran,
    (SELECT count(*) FROM inv WHERE ts_ms >= $at AND ts_ms < $until) AS after,
    (SELECT count(*) FROM inv WHERE script_version IS NOT NULL) AS with_version
