-- Where the invocations' versions came from.
SELECT DISTINCT version_source FROM inv WHERE version_source IS NOT NULL ORDER BY version_source
