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
-- One pass over the buyers for all five grains (DataFusion computes a CTE again wherever it is
-- named, so five SELECTs over `buyer` would read and join the orders five times).
SELECT
    g.grain,
    CASE g.grain
        WHEN 'day' THEN b.order_date
        WHEN 'week' THEN CAST(date_trunc('week', b.order_date) AS DATE)
        WHEN 'month' THEN CAST(date_trunc('month', b.order_date) AS DATE)
        WHEN 'quarter' THEN CAST(date_trunc('quarter', b.order_date) AS DATE)
        ELSE CAST(date_trunc('year', b.order_date) AS DATE)
    END AS period,
    b.region,
    b.segment,
    COUNT(DISTINCT b.customer_key) AS active_customers
FROM buyer b
CROSS JOIN (VALUES ('day'), ('week'), ('month'), ('quarter'), ('year')) AS g(grain)
GROUP BY 1, 2, 3, 4
