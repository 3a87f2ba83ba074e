-- The sales channels orders came through.
SELECT
    channel,
    channel IN ('web', 'online', 'e-commerce', 'ecommerce') AS is_digital,
    MIN(order_date) AS first_order_date
FROM core.sales_order
WHERE channel IS NOT NULL
GROUP BY channel
