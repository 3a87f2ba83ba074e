-- Product: association rules between the categories, and between the products, bought in the same
-- order. Over all (non-cancelled) orders, for a rule antecedent => consequent: support = orders
-- with both / orders, confidence = orders with both / orders with the antecedent, lift =
-- confidence / support of the consequent. Product pairs need at least {min_pair_orders} orders
-- together to be kept. (Categories and products are paired in separate passes, each reading the
-- order lines itself: in DataFusion 55 a shared basket with a `level` column, or pruning rare
-- products before pairing, made this mart three to four times slower on the sample company.)
-- Each unordered pair is counted once (`a.item < c.item`) and then turned both ways by a two-row
-- cross join, which halves the self-join's output and the grouping behind it.
WITH orders AS (
    SELECT COUNT(DISTINCT order_id) AS orders
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of}
),
category_basket AS (
    SELECT DISTINCT order_id, category AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of} AND category IS NOT NULL
),
category_item AS (
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
        JOIN category_basket c ON c.order_id = a.order_id AND a.item < c.item
        GROUP BY a.item, c.item
    ) p
    CROSS JOIN (VALUES (false), (true)) AS d(flip)
),
product_basket AS (
    SELECT DISTINCT order_id, sku AS item
    FROM core.order_line
    WHERE status <> 'cancelled' AND order_date <= {as_of}
),
product_item AS (
    SELECT item, COUNT(*) AS orders FROM product_basket GROUP BY item
),
product_pair AS (
    SELECT
        CASE WHEN d.flip THEN p.second_item ELSE p.first_item END AS antecedent,
        CASE WHEN d.flip THEN p.first_item ELSE p.second_item END AS consequent,
        p.orders
    FROM (
        SELECT a.item AS first_item, c.item AS second_item, COUNT(*) AS orders
        FROM product_basket a
        JOIN product_basket c ON c.order_id = a.order_id AND a.item < c.item
        GROUP BY a.item, c.item
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
    SELECT 'product' AS level, p.antecedent, p.consequent, p.orders,
           a.orders, c.orders
    FROM product_pair p
    JOIN product_item a ON a.item = p.antecedent
    JOIN product_item c ON c.item = p.consequent
    WHERE p.orders >= {min_pair_orders}
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
