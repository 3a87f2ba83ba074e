-- Product: association rules between the categories, and between the products, bought in the same
-- order. Over all (non-cancelled) orders, for a rule antecedent => consequent: support = orders
-- with both / orders, confidence = orders with both / orders with the antecedent, lift =
-- confidence / support of the consequent. Product pairs need at least {min_pair_orders} orders
-- together to be kept.
-- The baskets (each order's distinct products, and its distinct categories) are computed once
-- (`AS MATERIALIZED`: DataFusion would otherwise compute a CTE again wherever it is named) on the
-- integer order and product keys, then joined with themselves. Each unordered pair is counted
-- once (`a.item < c.item`) and then turned both ways by a two-row cross join, which halves the
-- self-join's output and the grouping behind it. Each product's SKU comes back at the end. Lines
-- whose SKU core.product does not know have no product_key and form no product rules.
WITH product_basket AS MATERIALIZED (
    SELECT DISTINCT order_key, product_key AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of}
),
category_basket AS MATERIALIZED (
    SELECT DISTINCT order_key, category AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of} AND category IS NOT NULL
),
orders AS (
    SELECT COUNT(DISTINCT order_key) AS orders FROM product_basket
),
category_item AS MATERIALIZED (
    SELECT item, COUNT(*) AS orders FROM category_basket GROUP BY item
),
category_pair AS (
    SELECT
        CASE WHEN d.flip THEN p.second_item ELSE p.first_item END AS antecedent,
        CASE WHEN d.flip THEN p.first_item ELSE p.second_item END AS consequent,
        p.orders
    FROM (
        SELECT a.item AS first_item, c.item AS second_item, COUNT(*) AS orders
        FROM category_basket a
        JOIN category_basket c ON c.order_key = a.order_key AND a.item < c.item
        GROUP BY a.item, c.item
    ) p
    CROSS JOIN (VALUES (false), (true)) AS d(flip)
),
product_item AS MATERIALIZED (
    SELECT b.item, s.sku, b.orders
    FROM (SELECT item, COUNT(*) AS orders FROM product_basket GROUP BY item) b
    LEFT JOIN (
        SELECT product_key, MIN(sku) AS sku
        FROM core.order_line
        WHERE status <> 'cancelled' AND order_date <= {as_of}
        GROUP BY product_key
    ) s ON s.product_key = b.item
),
product_pair AS (
    SELECT
        CASE WHEN d.flip THEN p.second_item ELSE p.first_item END AS antecedent,
        CASE WHEN d.flip THEN p.first_item ELSE p.second_item END AS consequent,
        p.orders
    FROM (
        SELECT a.item AS first_item, c.item AS second_item, COUNT(*) AS orders
        FROM product_basket a
        JOIN product_basket c ON c.order_key = a.order_key AND a.item < c.item
        GROUP BY a.item, c.item
        HAVING COUNT(*) >= {min_pair_orders}
    ) p
    CROSS JOIN (VALUES (false), (true)) AS d(flip)
),
rule AS (
    SELECT 'category' AS level, p.antecedent, p.consequent, p.orders AS orders_with_both,
           a.orders AS orders_with_antecedent, c.orders AS orders_with_consequent
    FROM category_pair p
    JOIN category_item a ON a.item = p.antecedent
    JOIN category_item c ON c.item = p.consequent
    UNION ALL
    SELECT 'product' AS level, a.sku, c.sku, p.orders,
           a.orders, c.orders
    FROM product_pair p
    JOIN product_item a ON a.item = p.antecedent
    JOIN product_item c ON c.item = p.consequent
)
SELECT
    r.level,
    r.antecedent,
    r.consequent,
    r.orders_with_both,
    r.orders_with_antecedent,
    r.orders_with_consequent,
    n.orders,
    CAST(r.orders_with_both AS DOUBLE) / n.orders AS support,
    CAST(r.orders_with_both AS DOUBLE) / r.orders_with_antecedent AS confidence,
    (CAST(r.orders_with_both AS DOUBLE) / r.orders_with_antecedent)
        / (CAST(r.orders_with_consequent AS DOUBLE) / n.orders) AS lift
FROM rule r
CROSS JOIN orders n
