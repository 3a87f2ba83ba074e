-- Invoices with the customer: from the invoice's own customer number, else from its order.
SELECT
    i.invoice_id,
    i.order_id,
    COALESCE(s.customer_key, o.customer_key) AS customer_key,
    i.invoiced_at,
    i.due_at,
    i.amount,
    i.currency,
    lower(trim(i.status)) AS status
FROM staging.invoice i
LEFT JOIN core.customer_source s ON s.source_system = 'erp' AND s.customer_id = i.customer_id
LEFT JOIN core.sales_order o ON o.order_id = i.order_id
