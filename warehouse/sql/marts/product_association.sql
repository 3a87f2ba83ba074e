-- Product: association rules between the categories, and between the products, bought in the same
-- order. For a rule antecedent => consequent over all orders: support = orders with both / orders,
-- confidence = orders with both / orders with the antecedent, lift = confidence / support of the
-- consequent. Product pairs need at least {min_pair_orders} orders together to be kept.
WITH basket AS (
    SELECT DISTINCT 'category' AS level, order_id, category AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of} AND category IS NOT NULL
    UNION ALL
    SELECT DISTINCT 'product' AS level, order_id, sku AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of}
),
orders AS (
    SELECT level, COUNT(DISTINCT order_id) AS orders
    FROM basket
    GROUP BY level
),
item AS (
    SELECT level, item, COUNT(*) AS orders
    FROM basket
    GROUP BY level, item
),
frequent AS (
    -- A pair is in no more orders than either of its items, so only products bought in at least
    -- {min_pair_orders} orders can form a rule worth keeping: pair only those (the Apriori property).
    SELECT b.level, b.order_id, b.item
    FROM basket b
    JOIN item i ON i.level = b.level AND i.item = b.item
    WHERE b.level = 'category' OR i.orders >= {min_pair_orders}
),
pair AS (
    SELECT a.level, a.item AS antecedent, c.item AS consequent, COUNT(*) AS orders
    FROM frequent a
    JOIN frequent c ON c.level = a.level AND c.order_id = a.order_id AND c.item <> a.item
    GROUP BY a.level, a.item, c.item
)
SELECT
    p.level,
    p.antecedent,
    p.consequent,
    p.orders AS orders_with_both,
    a.orders AS orders_with_antecedent,
    c.orders AS orders_with_consequent,
    n.orders AS orders,
    CAST(p.orders AS DOUBLE) / n.orders AS support,
    CAST(p.orders AS DOUBLE) / a.orders AS confidence,
    (CAST(p.orders AS DOUBLE) / a.orders) / (CAST(c.orders AS DOUBLE) / n.orders) AS lift
FROM pair p
JOIN orders n ON n.level = p.level
JOIN item a ON a.level = p.level AND a.item = p.antecedent
JOIN item c ON c.level = p.level AND c.item = p.consequent
WHERE p.level = 'category' OR p.orders >= {min_pair_orders}
