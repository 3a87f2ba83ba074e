-- Rollup behind the semantic layer: the additive sales measures by month, product, category and
-- region (cancelled orders left out), for product questions over whole months: the Products
-- dashboard reads this, never the order lines. Channel and segment are left out on purpose: with
-- them nearly every row would be one order line, and the rollup as large as the facts.
SELECT
    CAST(date_trunc('month', l.order_date) AS DATE) AS month,
    l.sku,
    COALESCE(l.category, 'unknown') AS category,
    COALESCE(l.region, 'unknown') AS region,
    CAST(SUM(l.gross_amount) AS DECIMAL(18, 2)) AS gross_sales,
    CAST(SUM(l.discount_amount) AS DECIMAL(18, 2)) AS discounts,
    CAST(SUM(l.net_amount) AS DECIMAL(18, 2)) AS revenue,
    CAST(SUM(l.returned_amount) AS DECIMAL(18, 2)) AS returns,
    CAST(SUM(l.cost_amount - l.returned_cost) AS DECIMAL(18, 2)) AS cost_of_goods,
    CAST(SUM(l.net_amount - l.returned_amount - l.cost_amount + l.returned_cost) AS DECIMAL(18, 2)) AS gross_margin,
    CAST(SUM(l.quantity) AS DECIMAL(18, 3)) AS units,
    COUNT(*) AS lines
FROM core.order_line l
WHERE l.status <> 'cancelled' AND l.order_date <= {as_of}
GROUP BY 1, 2, 3, 4
