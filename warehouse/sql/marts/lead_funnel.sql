-- Prospecting: leads by source and status, and how many became customers.
SELECT
    COALESCE(source, 'unknown') AS source,
    COALESCE(status, 'unknown') AS status,
    COUNT(*) AS leads,
    SUM(CASE WHEN is_converted THEN 1 ELSE 0 END) AS converted,
    CAST(SUM(CASE WHEN is_converted THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS conversion_rate
FROM core.lead
GROUP BY 1, 2
