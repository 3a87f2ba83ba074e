-- Stock on hand per product, location and day.
SELECT
    s.snapshot_date,
    p.product_key,
    s.sku,
    s.location,
    s.on_hand,
    s.on_order
FROM staging.inventory_snapshot s
LEFT JOIN core.product p ON p.sku = s.sku
