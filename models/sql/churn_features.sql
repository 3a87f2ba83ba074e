-- Churn features for every customer who bought in the year before the cut-off, using only what
-- was known on the cut-off day (orders, returns, payments, tickets, interactions and campaign
-- touches dated on or before it), and the label: no order in the `horizon` days after it.
--
-- Placeholders: {cutoff} (day number of the cut-off), {horizon} (days), {label_known} (whether
-- the label window has ended: false when scoring today's customers).
WITH orders AS (
    SELECT customer_key, day_number(order_date) AS day, CAST(net_total AS DOUBLE) AS value
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND day_number(order_date) <= {cutoff}
),
buying AS (
    SELECT
        customer_key,
        {cutoff} - MAX(day) AS recency_days,
        {cutoff} - MIN(day) AS tenure_days,
        COUNT(*) AS orders_total,
        CAST(COUNT(DISTINCT day) - 1 AS DOUBLE) / GREATEST(MAX(day) - MIN(day), 1) * 365.0 AS repeat_rate_per_year,
        SUM(CASE WHEN day > {cutoff} - 90 THEN 1 ELSE 0 END) AS orders_90d,
        SUM(CASE WHEN day > {cutoff} - 180 AND day <= {cutoff} - 90 THEN 1 ELSE 0 END) AS orders_prior_90d,
        SUM(CASE WHEN day > {cutoff} - 365 THEN 1 ELSE 0 END) AS orders_365d,
        SUM(CASE WHEN day > {cutoff} - 90 THEN value ELSE 0 END) AS revenue_90d,
        SUM(CASE WHEN day > {cutoff} - 365 THEN value ELSE 0 END) AS revenue_365d,
        AVG(value) AS avg_order_value
    FROM orders
    GROUP BY customer_key
),
categories AS (
    SELECT customer_key, COUNT(DISTINCT category) AS categories_365d
    FROM core.order_line
    WHERE customer_key IS NOT NULL AND status <> 'cancelled'
      AND day_number(order_date) <= {cutoff} AND day_number(order_date) > {cutoff} - 365
    GROUP BY customer_key
),
returns AS (
    SELECT customer_key, SUM(CAST(amount AS DOUBLE)) AS returned_365d
    FROM core.sales_return
    WHERE customer_key IS NOT NULL
      AND day_number(returned_at) <= {cutoff} AND day_number(returned_at) > {cutoff} - 365
    GROUP BY customer_key
),
paying AS (
    SELECT
        customer_key,
        SUM(CASE WHEN days_late > 0 THEN 1 ELSE 0 END) AS late_payments_365d,
        AVG(CAST(days_late AS DOUBLE)) AS avg_days_late_365d
    FROM core.payment
    WHERE customer_key IS NOT NULL
      AND day_number(paid_at) <= {cutoff} AND day_number(paid_at) > {cutoff} - 365
    GROUP BY customer_key
),
tickets AS (
    SELECT
        customer_key,
        SUM(CASE WHEN day_number(CAST(opened_at AS DATE)) > {cutoff} - 90 THEN 1 ELSE 0 END) AS tickets_90d,
        COUNT(*) AS tickets_365d,
        SUM(CASE WHEN priority IN ('high', 'urgent') THEN 1 ELSE 0 END) AS urgent_tickets_365d,
        -- Satisfaction is given when a ticket closes: only closings before the cut-off count.
        AVG(CASE WHEN day_number(CAST(closed_at AS DATE)) <= {cutoff} THEN CAST(satisfaction AS DOUBLE) END)
            AS satisfaction_365d
    FROM core.support_ticket
    WHERE customer_key IS NOT NULL
      AND day_number(CAST(opened_at AS DATE)) <= {cutoff}
      AND day_number(CAST(opened_at AS DATE)) > {cutoff} - 365
    GROUP BY customer_key
),
contacts AS (
    SELECT
        customer_key,
        COUNT(*) AS interactions_90d,
        SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) AS inbound_90d,
        AVG(CAST(sentiment AS DOUBLE)) AS sentiment_90d
    FROM core.interaction
    WHERE customer_key IS NOT NULL
      AND day_number(CAST(occurred_at AS DATE)) <= {cutoff}
      AND day_number(CAST(occurred_at AS DATE)) > {cutoff} - 90
    GROUP BY customer_key
),
campaigns AS (
    SELECT
        customer_key,
        COUNT(*) AS campaign_touches_365d,
        SUM(CASE WHEN responded THEN 1 ELSE 0 END) AS campaign_responses_365d
    FROM core.campaign_touch
    WHERE customer_key IS NOT NULL AND NOT is_control
      AND day_number(CAST(sent_at AS DATE)) <= {cutoff}
      AND day_number(CAST(sent_at AS DATE)) > {cutoff} - 365
    GROUP BY customer_key
),
future AS (
    SELECT DISTINCT customer_key
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled'
      AND day_number(order_date) > {cutoff} AND day_number(order_date) <= {cutoff} + {horizon}
)
SELECT
    b.customer_key,
    c.segment,
    c.region,
    b.recency_days,
    b.tenure_days,
    b.orders_total,
    b.repeat_rate_per_year,
    b.orders_90d,
    b.orders_prior_90d,
    b.orders_365d,
    b.revenue_90d,
    b.revenue_365d,
    b.avg_order_value,
    COALESCE(k.categories_365d, 0) AS categories_365d,
    COALESCE(r.returned_365d, 0) / GREATEST(b.revenue_365d, 1) AS return_rate_365d,
    COALESCE(p.late_payments_365d, 0) AS late_payments_365d,
    p.avg_days_late_365d,
    COALESCE(t.tickets_90d, 0) AS tickets_90d,
    COALESCE(t.tickets_365d, 0) AS tickets_365d,
    COALESCE(t.urgent_tickets_365d, 0) AS urgent_tickets_365d,
    t.satisfaction_365d,
    COALESCE(i.interactions_90d, 0) AS interactions_90d,
    COALESCE(i.inbound_90d, 0) AS inbound_90d,
    i.sentiment_90d,
    COALESCE(m.campaign_touches_365d, 0) AS campaign_touches_365d,
    COALESCE(m.campaign_responses_365d, 0) AS campaign_responses_365d,
    CASE WHEN {label_known} THEN f.customer_key IS NULL END AS churned
FROM buying b
LEFT JOIN core.customer c ON c.customer_key = b.customer_key
LEFT JOIN categories k ON k.customer_key = b.customer_key
LEFT JOIN returns r ON r.customer_key = b.customer_key
LEFT JOIN paying p ON p.customer_key = b.customer_key
LEFT JOIN tickets t ON t.customer_key = b.customer_key
LEFT JOIN contacts i ON i.customer_key = b.customer_key
LEFT JOIN campaigns m ON m.customer_key = b.customer_key
LEFT JOIN future f ON f.customer_key = b.customer_key
WHERE b.orders_365d > 0
ORDER BY b.customer_key
