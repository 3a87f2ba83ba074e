-- Rollup behind the semantic layer: distinct buying customers per period at every grain, by region
-- and segment (a customer has one of each, so these add up; distinct counts over time do not, hence
-- one set of rows per grain).
WITH buyer AS (
    SELECT DISTINCT
        o.customer_key,
        o.order_date,
        COALESCE(o.region, 'unknown') AS region,
        COALESCE(c.segment, 'unknown') AS segment
    FROM core.sales_order o
    LEFT JOIN core.customer c ON c.customer_key = o.customer_key
    WHERE o.status <> 'cancelled' AND o.customer_key IS NOT NULL AND o.order_date <= {as_of}
)
SELECT 'day' AS grain, order_date AS period, region, segment, COUNT(DISTINCT customer_key) AS active_customers
FROM buyer GROUP BY 2, 3, 4
UNION ALL
SELECT 'week', CAST(date_trunc('week', order_date) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer GROUP BY 2, 3, 4
UNION ALL
SELECT 'month', CAST(date_trunc('month', order_date) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer GROUP BY 2, 3, 4
UNION ALL
SELECT 'quarter', CAST(date_trunc('quarter', order_date) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer GROUP BY 2, 3, 4
UNION ALL
SELECT 'year', CAST(date_trunc('year', order_date) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer GROUP BY 2, 3, 4
