-- Returns, tied to their order line, product and customer. A return without an amount is
-- credited at the line's net price per unit.
SELECT
    r.return_id,
    r.order_id,
    r.line_number,
    COALESCE(r.sku, l.sku) AS sku,
    p.product_key,
    o.customer_key,
    r.quantity,
    r.returned_at,
    r.reason,
    COALESCE(
        r.amount,
        CAST(r.quantity * l.net_amount / NULLIF(l.quantity, 0) AS DECIMAL(18, 2))
    ) AS amount,
    CAST(r.quantity * l.unit_cost AS DECIMAL(18, 2)) AS cost_amount
FROM staging.sales_return r
LEFT JOIN core.sales_order o ON o.order_id = r.order_id
LEFT JOIN staging.order_line l ON l.order_id = r.order_id AND l.line_number = r.line_number
LEFT JOIN core.product p ON p.sku = COALESCE(r.sku, l.sku)
