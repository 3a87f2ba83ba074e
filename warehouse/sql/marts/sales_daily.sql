-- Rollup behind the semantic layer: every additive sales measure by day, category, channel, region
-- and customer segment (cancelled orders left out). Dashboards read this, never the order lines.
SELECT
    l.order_date AS date,
    COALESCE(l.category, 'unknown') AS category,
    COALESCE(l.channel, 'unknown') AS channel,
    COALESCE(l.region, 'unknown') AS region,
    COALESCE(c.segment, 'unknown') AS segment,
    CAST(SUM(l.gross_amount) AS DECIMAL(18, 2)) AS gross_sales,
    CAST(SUM(l.discount_amount) AS DECIMAL(18, 2)) AS discounts,
    CAST(SUM(l.net_amount) AS DECIMAL(18, 2)) AS revenue,
    CAST(SUM(l.returned_amount) AS DECIMAL(18, 2)) AS returns,
    CAST(SUM(l.cost_amount - l.returned_cost) AS DECIMAL(18, 2)) AS cost_of_goods,
    CAST(SUM(l.net_amount - l.returned_amount - l.cost_amount + l.returned_cost) AS DECIMAL(18, 2)) AS gross_margin,
    CAST(SUM(l.quantity) AS DECIMAL(18, 3)) AS units,
    COUNT(*) AS lines
FROM core.order_line l
LEFT JOIN core.customer c ON c.customer_key = l.customer_key
WHERE l.status <> 'cancelled' AND l.order_date <= {as_of}
GROUP BY 1, 2, 3, 4, 5
