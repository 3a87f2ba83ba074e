-- Rollup behind the semantic layer: orders by day, channel, region and segment. An order has one
-- day, channel and customer, so order counts add up across these rows exactly.
SELECT
    o.order_date AS date,
    COALESCE(o.channel, 'unknown') AS channel,
    COALESCE(o.region, 'unknown') AS region,
    COALESCE(c.segment, 'unknown') AS segment,
    COUNT(*) AS orders,
    CAST(SUM(o.net_total) AS DECIMAL(18, 2)) AS order_value
FROM core.sales_order o
LEFT JOIN core.customer c ON c.customer_key = o.customer_key
WHERE o.status <> 'cancelled' AND o.order_date <= {as_of}
GROUP BY 1, 2, 3, 4
