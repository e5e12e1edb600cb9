-- The log lines that may name the deployed version of an invocation without a script_version
-- (a "deploy"/"version"/"scriptVersion"/"script_version" key in its message), in frame order.
-- The JSON rule itself (which key wins, objects among the arguments) runs on these few lines only.
SELECT l.invocation_id, l.message, l.args
FROM logs AS l
SEMI JOIN (
    SELECT DISTINCT invocation_id FROM invocations WHERE script_version IS NULL AND invocation_id IS NOT NULL
) AS i ON i.invocation_id = l.invocation_id
WHERE regexp_matches(l.message, $key_re)
ORDER BY l.pos
