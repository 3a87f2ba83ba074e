-- Products, with a stable integer key derived from the SKU (the same SKU keeps its key across
-- refreshes, so facts written earlier still join).
SELECT
    stable_key(sku) AS product_key,
    sku,
    name,
    category,
    subcategory,
    brand,
    list_price,
    standard_cost,
    currency,
    launched_at
FROM staging.product
