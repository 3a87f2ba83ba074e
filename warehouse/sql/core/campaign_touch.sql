-- Campaign touches with the resolved customer and, for a converted touch, the order's value
-- (cancelled orders convert nothing).
SELECT
    t.campaign_id,
    s.customer_key,
    t.contact_id,
    t.sent_at,
    t.status,
    COALESCE(t.is_control, false) AS is_control,
    COALESCE(t.opened, false) AS opened,
    COALESCE(t.clicked, false) AS clicked,
    COALESCE(t.responded, false) AS responded,
    t.converted_order_id,
    o.order_id IS NOT NULL AS converted,
    o.net_total AS converted_revenue
FROM staging.campaign_touch t
LEFT JOIN core.customer_source s ON s.source_system = 'crm' AND s.customer_id = t.customer_id
LEFT JOIN core.sales_order o ON o.order_id = t.converted_order_id AND o.status <> 'cancelled'
