-- The central fact: one row per order line, carrying the keys and the order's date, channel,
-- status and region (degenerate dimensions) so that marts and rollups need no further joins.
-- Amounts: gross = quantity x unit price; discount = gross - net; cost = quantity x unit cost at
-- the time of sale; returned_* sum the line's returns (cost of returned goods comes back to stock).
-- `order_key` is the order id's integer key (as in core.sales_order), computed from the line itself
-- so that a line whose order has not arrived yet still has it; `product_key` is NULL for a SKU
-- that core.product does not know.
WITH returned AS (
    SELECT
        order_id,
        line_number,
        SUM(quantity) AS quantity,
        SUM(amount) AS amount,
        SUM(cost_amount) AS cost_amount
    FROM core.sales_return
    WHERE line_number IS NOT NULL
    GROUP BY order_id, line_number
)
SELECT
    l.order_id,
    stable_key(l.order_id) AS order_key,
    l.line_number,
    o.customer_key,
    o.order_date,
    o.channel,
    o.status,
    o.country,
    o.region,
    p.product_key,
    l.sku,
    p.category,
    l.quantity,
    l.unit_price,
    l.discount,
    CAST(l.quantity * l.unit_price AS DECIMAL(18, 2)) AS gross_amount,
    CAST(
        CAST(l.quantity * l.unit_price AS DECIMAL(18, 2))
        - COALESCE(l.net_amount, CAST(l.quantity * l.unit_price * (1 - COALESCE(l.discount, 0)) AS DECIMAL(18, 2)))
        AS DECIMAL(18, 2)
    ) AS discount_amount,
    COALESCE(l.net_amount, CAST(l.quantity * l.unit_price * (1 - COALESCE(l.discount, 0)) AS DECIMAL(18, 2))) AS net_amount,
    l.unit_cost,
    CAST(l.quantity * l.unit_cost AS DECIMAL(18, 2)) AS cost_amount,
    CAST(COALESCE(r.quantity, 0) AS DECIMAL(18, 3)) AS returned_quantity,
    CAST(COALESCE(r.amount, 0) AS DECIMAL(18, 2)) AS returned_amount,
    CAST(COALESCE(r.cost_amount, 0) AS DECIMAL(18, 2)) AS returned_cost
FROM staging.order_line l
LEFT JOIN core.sales_order o ON o.order_id = l.order_id
LEFT JOIN core.product p ON p.sku = l.sku
LEFT JOIN returned r ON r.order_id = l.order_id AND r.line_number = l.line_number
