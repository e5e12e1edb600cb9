-- Rows per frame.
SELECT
    (SELECT count(*) FROM invocations) AS invocations,
    (SELECT count(*) FROM logs) AS logs,
    (SELECT count(*) FROM exceptions) AS exceptions,
    (SELECT count(*) FROM dlq) AS dlq
