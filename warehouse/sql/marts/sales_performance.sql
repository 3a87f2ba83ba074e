-- Performance: sales by month, category, channel and region (the grain most reports roll up
-- from). Cancelled orders are left out; returns count in the month of the original sale.
SELECT
    CAST(date_trunc('month', order_date) AS DATE) AS month,
    COALESCE(category, 'unknown') AS category,
    COALESCE(channel, 'unknown') AS channel,
    COALESCE(region, 'unknown') AS region,
    COUNT(DISTINCT order_key) AS orders,
    COUNT(DISTINCT customer_key) AS customers,
    CAST(SUM(quantity) AS DECIMAL(18, 3)) AS quantity,
    CAST(SUM(gross_amount) AS DECIMAL(18, 2)) AS gross_sales,
    CAST(SUM(discount_amount) AS DECIMAL(18, 2)) AS discounts,
    CAST(SUM(net_amount) AS DECIMAL(18, 2)) AS net_sales,
    CAST(SUM(returned_amount) AS DECIMAL(18, 2)) AS returns,
    CAST(SUM(cost_amount - returned_cost) AS DECIMAL(18, 2)) AS cost_of_goods,
    CAST(SUM(net_amount - returned_amount - (cost_amount - returned_cost)) AS DECIMAL(18, 2)) AS gross_margin
FROM core.order_line
WHERE status <> 'cancelled' AND order_date <= {as_of}
GROUP BY 1, 2, 3, 4
