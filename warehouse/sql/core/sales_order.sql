-- Sales orders with the resolved customer. Channel and status are lower-cased so that filters do
-- not depend on how one ERP spells them; country and region come from the customer. `order_key`
-- is the order's integer key (as `product_key` is the SKU's): marts count and pair orders on it,
-- which groups and joins several times faster than on the text id.
SELECT
    o.order_id,
    stable_key(o.order_id) AS order_key,
    s.customer_key,
    o.customer_id AS erp_customer_id,
    o.order_date,
    lower(trim(o.channel)) AS channel,
    o.sales_rep,
    lower(trim(o.status)) AS status,
    o.currency,
    o.net_total,
    c.country,
    c.region
FROM staging.sales_order o
LEFT JOIN core.customer_source s ON s.source_system = 'erp' AND s.customer_id = o.customer_id
LEFT JOIN core.customer c ON c.customer_key = s.customer_key
