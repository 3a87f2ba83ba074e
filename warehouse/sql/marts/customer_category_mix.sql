-- Product: each customer's category mix, the share of their net sales per category and its rank.
WITH mix AS (
    SELECT
        customer_key,
        COALESCE(category, 'unknown') AS category,
        COUNT(DISTINCT order_key) AS orders,
        SUM(quantity) AS quantity,
        SUM(net_amount) AS net_sales
    FROM core.order_line
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY 1, 2
)
SELECT
    customer_key,
    category,
    orders,
    CAST(quantity AS DECIMAL(18, 3)) AS quantity,
    CAST(net_sales AS DECIMAL(18, 2)) AS net_sales,
    CAST(net_sales AS DOUBLE) / NULLIF(SUM(CAST(net_sales AS DOUBLE)) OVER (PARTITION BY customer_key), 0) AS share,
    ROW_NUMBER() OVER (PARTITION BY customer_key ORDER BY net_sales DESC, category) AS rank
FROM mix
