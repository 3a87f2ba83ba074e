-- Rollup behind the semantic layer's churn_rate: for each month, the customers who bought in it
-- and, of those, the ones who then bought nothing for {churn_days} days after their last purchase
-- of the month. Months whose last purchases are fewer than {churn_days} days before {as_of} cannot
-- be judged yet; their customers are counted as undecided, not as retained.
WITH monthly AS (
    SELECT
        customer_key,
        CAST(date_trunc('month', order_date) AS DATE) AS month,
        MIN(order_date) AS first_in_month,
        MAX(order_date) AS last_in_month
    FROM core.sales_order
    WHERE status <> 'cancelled' AND customer_key IS NOT NULL AND order_date <= {as_of}
    GROUP BY 1, 2
),
judged AS (
    SELECT
        customer_key,
        month,
        last_in_month,
        LEAD(first_in_month) OVER (PARTITION BY customer_key ORDER BY month) AS next_purchase
    FROM monthly
)
SELECT
    j.month,
    COALESCE(c.region, 'unknown') AS region,
    COALESCE(c.segment, 'unknown') AS segment,
    SUM(CASE WHEN day_number(j.last_in_month) + {churn_days} <= day_number({as_of})
              OR j.next_purchase IS NOT NULL THEN 1 ELSE 0 END) AS judged_customers,
    SUM(CASE WHEN (j.next_purchase IS NULL AND day_number(j.last_in_month) + {churn_days} <= day_number({as_of}))
              OR day_number(j.next_purchase) - day_number(j.last_in_month) > {churn_days} THEN 1 ELSE 0 END)
        AS churned_customers
FROM judged j
LEFT JOIN core.customer c ON c.customer_key = j.customer_key
GROUP BY 1, 2, 3
