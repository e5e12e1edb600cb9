-- The times of the retried deliveries (attempt >= 2) in [$t0, $t1).
SELECT ts_ms FROM deliveries WHERE attempt >= 2 AND ts_ms >= $t0 AND ts_ms < $t1
