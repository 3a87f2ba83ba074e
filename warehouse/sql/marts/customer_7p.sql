-- The 7P profile: one row per customer with the headline measure of each P. The detail behind
-- each P is in its own mart (customer_rfm, customer_persistency, cohort_retention,
-- customer_profitability, customer_performance, sales_performance, customer_prospecting,
-- pipeline, customer_category_mix, product_association, customer_promotion, campaign_response).
WITH top_category AS (
    SELECT customer_key, category AS top_category, share AS top_category_share
    FROM marts.customer_category_mix
    WHERE rank = 1
),
categories AS (
    SELECT customer_key, COUNT(*) AS categories_bought
    FROM marts.customer_category_mix
    GROUP BY customer_key
),
channel_orders AS (
    SELECT
        customer_key,
        channel,
        ROW_NUMBER() OVER (PARTITION BY customer_key ORDER BY COUNT(*) DESC, channel) AS rank
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY customer_key, channel
)
SELECT
    c.customer_key,
    c.crm_account_id,
    c.erp_customer_id,
    c.name,
    c.segment,
    c.industry,
    c.country,
    c.region,
    -- Profiling
    r.rfm_code,
    r.rfm_segment,
    r.first_purchase,
    r.last_purchase,
    ch.channel AS preferred_channel,
    -- Persistency
    p.tenure_days,
    r.frequency,
    r.recency,
    r.t,
    r.monetary_value,
    p.active_months,
    p.gap_variation,
    COALESCE(p.active_last_90_days, false) AS active_last_90_days,
    -- Profitability
    pr.net_sales,
    pr.gross_margin,
    pr.gross_margin_rate,
    pr.cost_to_serve,
    pr.contribution_margin,
    -- Performance
    COALESCE(pe.orders, 0) AS orders,
    pe.average_order_value,
    pe.orders_per_month,
    pe.return_rate,
    pe.days_sales_outstanding,
    COALESCE(pe.late_payments, 0) AS late_payments,
    -- Prospecting
    ps.expected_orders_next_90d,
    ps.expected_revenue_next_90d,
    ps.growth_trend,
    ps.weighted_pipeline,
    -- Product
    tc.top_category,
    tc.top_category_share,
    COALESCE(cat.categories_bought, 0) AS categories_bought,
    -- Promotion
    COALESCE(pm.touches, 0) AS campaign_touches,
    pm.response_rate AS campaign_response_rate,
    COALESCE(pm.conversions, 0) AS campaign_conversions,
    COALESCE(pm.attributed_revenue, CAST(0 AS DECIMAL(18, 2))) AS campaign_revenue
FROM core.customer c
LEFT JOIN marts.customer_rfm r ON r.customer_key = c.customer_key
LEFT JOIN channel_orders ch ON ch.customer_key = c.customer_key AND ch.rank = 1
LEFT JOIN marts.customer_persistency p ON p.customer_key = c.customer_key
LEFT JOIN marts.customer_profitability pr ON pr.customer_key = c.customer_key
LEFT JOIN marts.customer_performance pe ON pe.customer_key = c.customer_key
LEFT JOIN marts.customer_prospecting ps ON ps.customer_key = c.customer_key
LEFT JOIN top_category tc ON tc.customer_key = c.customer_key
LEFT JOIN categories cat ON cat.customer_key = c.customer_key
LEFT JOIN marts.customer_promotion pm ON pm.customer_key = c.customer_key
