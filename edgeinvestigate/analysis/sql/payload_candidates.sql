-- The clustered log lines whose message or arguments may hold a tenant-like field (a quoted key of
-- $key_re), in the order of the error rows: the JSON rule runs on these only.
SELECT e.job_id, e.cluster_id, l.message, l.args
FROM errors AS e
JOIN logs AS l ON l.pos = e."row"
WHERE e.source = 'log'
  AND (regexp_matches(l.message, $key_re) OR regexp_matches(l.args, $key_re))
ORDER BY e.pos
