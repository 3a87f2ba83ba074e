-- Performance per customer: orders, average order value, orders per active month of tenure,
-- revenue in the last twelve months before {as_of} against the twelve before, return rate, and
-- payment behaviour (days sales outstanding weighted by amount, late payments).
WITH orders AS (
    SELECT
        customer_key,
        COUNT(*) AS orders,
        SUM(net_total) AS order_value,
        MIN(order_date) AS first_order
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY customer_key
),
lines AS (
    SELECT
        customer_key,
        SUM(CASE WHEN order_date > {as_of} - INTERVAL '12 months' THEN net_amount ELSE 0 END) AS revenue_last_12m,
        SUM(CASE WHEN order_date <= {as_of} - INTERVAL '12 months'
                  AND order_date > {as_of} - INTERVAL '24 months' THEN net_amount ELSE 0 END) AS revenue_prior_12m,
        SUM(quantity) AS quantity,
        SUM(returned_quantity) AS returned_quantity
    FROM core.order_line
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY customer_key
),
payments AS (
    SELECT
        customer_key,
        COUNT(*) AS payments,
        SUM(CAST(amount AS DOUBLE) * days_to_pay) / NULLIF(SUM(CAST(amount AS DOUBLE)), 0) AS days_sales_outstanding,
        SUM(CASE WHEN days_late > 0 THEN 1 ELSE 0 END) AS late_payments,
        AVG(CAST(days_late AS DOUBLE)) AS mean_days_late
    FROM core.payment
    WHERE customer_key IS NOT NULL AND paid_at <= {as_of}
    GROUP BY customer_key
)
SELECT
    o.customer_key,
    o.orders,
    CAST(o.order_value / o.orders AS DECIMAL(18, 2)) AS average_order_value,
    CAST(o.orders AS DOUBLE)
        / GREATEST((day_number({as_of}) - day_number(o.first_order)) / 30.4375, 1.0) AS orders_per_month,
    CAST(l.revenue_last_12m AS DECIMAL(18, 2)) AS revenue_last_12m,
    CAST(l.revenue_prior_12m AS DECIMAL(18, 2)) AS revenue_prior_12m,
    CAST(l.returned_quantity AS DOUBLE) / NULLIF(CAST(l.quantity AS DOUBLE), 0) AS return_rate,
    COALESCE(p.payments, 0) AS payments,
    p.days_sales_outstanding,
    COALESCE(p.late_payments, 0) AS late_payments,
    p.mean_days_late
FROM orders o
LEFT JOIN lines l ON l.customer_key = o.customer_key
LEFT JOIN payments p ON p.customer_key = o.customer_key
