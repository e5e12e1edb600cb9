-- Deliveries per attempt number.
SELECT attempt, count(*) AS n FROM deliveries GROUP BY attempt ORDER BY attempt
