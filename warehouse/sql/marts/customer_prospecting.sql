-- Prospecting: what the customer is likely to do next. Until the models issue's BG/NBD scores
-- replace it, expected orders in the next 90 days are the run rate of the last 365 days, and
-- expected revenue is that times the average order value of those orders. The growth trend
-- compares the last twelve months with the twelve before; the pipeline is the customer's open
-- opportunities, weighted by their win probability.
WITH recent AS (
    SELECT
        customer_key,
        SUM(CASE WHEN order_date > {as_of} - INTERVAL '365 days' THEN 1 ELSE 0 END) AS orders_last_365d,
        SUM(CASE WHEN order_date > {as_of} - INTERVAL '365 days' THEN net_total ELSE 0 END) AS revenue_last_365d,
        SUM(CASE WHEN order_date > {as_of} - INTERVAL '12 months' THEN net_total ELSE 0 END) AS revenue_last_12m,
        SUM(CASE WHEN order_date <= {as_of} - INTERVAL '12 months'
                  AND order_date > {as_of} - INTERVAL '24 months' THEN net_total ELSE 0 END) AS revenue_prior_12m
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY customer_key
),
pipeline AS (
    SELECT
        customer_key,
        COUNT(*) AS open_opportunities,
        SUM(amount) AS open_pipeline,
        SUM(weighted_amount) AS weighted_pipeline
    FROM core.opportunity
    WHERE customer_key IS NOT NULL AND NOT is_closed
    GROUP BY customer_key
),
history AS (
    SELECT
        customer_key,
        CAST(SUM(CASE WHEN is_won THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS win_rate
    FROM core.opportunity
    WHERE customer_key IS NOT NULL AND is_closed
    GROUP BY customer_key
)
SELECT
    c.customer_key,
    COALESCE(r.orders_last_365d, 0) AS orders_last_365d,
    CAST(COALESCE(r.orders_last_365d, 0) AS DOUBLE) * 90.0 / 365.0 AS expected_orders_next_90d,
    CAST(
        CAST(COALESCE(r.revenue_last_365d, 0) AS DOUBLE) * 90.0 / 365.0 AS DECIMAL(18, 2)
    ) AS expected_revenue_next_90d,
    CAST(r.revenue_last_12m - r.revenue_prior_12m AS DOUBLE)
        / NULLIF(CAST(r.revenue_prior_12m AS DOUBLE), 0) AS growth_trend,
    COALESCE(p.open_opportunities, 0) AS open_opportunities,
    CAST(COALESCE(p.open_pipeline, 0) AS DECIMAL(18, 2)) AS open_pipeline,
    CAST(COALESCE(p.weighted_pipeline, 0) AS DECIMAL(18, 2)) AS weighted_pipeline,
    h.win_rate
FROM core.customer c
LEFT JOIN recent r ON r.customer_key = c.customer_key
LEFT JOIN pipeline p ON p.customer_key = c.customer_key
LEFT JOIN history h ON h.customer_key = c.customer_key
