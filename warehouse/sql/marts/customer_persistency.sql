-- Persistency per customer: tenure, how regularly they buy (coefficient of variation of the gaps
-- between purchase days: 0 = clockwork), active months, repeat buyer, and whether they bought in
-- the last 90 days before {as_of}.
WITH purchase_day AS (
    SELECT DISTINCT customer_key, order_date
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
),
gap AS (
    SELECT
        customer_key,
        order_date,
        day_number(order_date) - day_number(LAG(order_date) OVER (PARTITION BY customer_key ORDER BY order_date)) AS gap_days
    FROM purchase_day
)
SELECT
    customer_key,
    MIN(order_date) AS first_purchase,
    MAX(order_date) AS last_purchase,
    CAST(day_number({as_of}) - day_number(MIN(order_date)) AS BIGINT) AS tenure_days,
    COUNT(*) AS purchase_days,
    COUNT(DISTINCT date_trunc('month', order_date)) AS active_months,
    COUNT(*) > 1 AS is_repeat_buyer,
    AVG(CAST(gap_days AS DOUBLE)) AS mean_gap_days,
    stddev_samp(CAST(gap_days AS DOUBLE)) / NULLIF(AVG(CAST(gap_days AS DOUBLE)), 0) AS gap_variation,
    MAX(order_date) > {as_of} - INTERVAL '90 days' AS active_last_90_days
FROM gap
GROUP BY customer_key
