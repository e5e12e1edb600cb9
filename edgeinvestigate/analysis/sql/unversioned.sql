-- How many invocations have an id but no script_version.
SELECT count(*) AS n FROM invocations WHERE script_version IS NULL AND invocation_id IS NOT NULL
