-- Profitability per customer: gross sales, discounts, returns and the cost of the goods kept give
-- the gross margin (gross sales - discounts - returns - cost of goods); cost to serve prices each
-- support ticket at {ticket_cost} and each interaction at {interaction_cost}; contribution margin
-- is what is left after serving.
WITH sales AS (
    SELECT
        customer_key,
        SUM(gross_amount) AS gross_sales,
        SUM(discount_amount) AS discounts,
        SUM(net_amount) AS net_sales,
        SUM(returned_amount) AS returns,
        SUM(cost_amount - returned_cost) AS cost_of_goods
    FROM core.order_line
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
    GROUP BY customer_key
),
tickets AS (
    SELECT customer_key, COUNT(*) AS tickets
    FROM core.support_ticket
    WHERE customer_key IS NOT NULL AND CAST(opened_at AS DATE) <= {as_of}
    GROUP BY customer_key
),
contacts AS (
    SELECT customer_key, COUNT(*) AS interactions
    FROM core.interaction
    WHERE customer_key IS NOT NULL AND CAST(occurred_at AS DATE) <= {as_of}
    GROUP BY customer_key
),
costed AS (
    SELECT
        c.customer_key,
        CAST(COALESCE(s.gross_sales, 0) AS DECIMAL(18, 2)) AS gross_sales,
        CAST(COALESCE(s.discounts, 0) AS DECIMAL(18, 2)) AS discounts,
        CAST(COALESCE(s.net_sales, 0) AS DECIMAL(18, 2)) AS net_sales,
        CAST(COALESCE(s.returns, 0) AS DECIMAL(18, 2)) AS returns,
        CAST(COALESCE(s.cost_of_goods, 0) AS DECIMAL(18, 2)) AS cost_of_goods,
        COALESCE(t.tickets, 0) AS tickets,
        COALESCE(i.interactions, 0) AS interactions
    FROM core.customer c
    LEFT JOIN sales s ON s.customer_key = c.customer_key
    LEFT JOIN tickets t ON t.customer_key = c.customer_key
    LEFT JOIN contacts i ON i.customer_key = c.customer_key
)
SELECT
    customer_key,
    gross_sales,
    discounts,
    net_sales,
    returns,
    cost_of_goods,
    CAST(gross_sales - discounts - returns - cost_of_goods AS DECIMAL(18, 2)) AS gross_margin,
    CAST(gross_sales - discounts - returns - cost_of_goods AS DOUBLE)
        / NULLIF(CAST(net_sales - returns AS DOUBLE), 0) AS gross_margin_rate,
    tickets,
    interactions,
    CAST(tickets * {ticket_cost} + interactions * {interaction_cost} AS DECIMAL(18, 2)) AS cost_to_serve,
    CAST(
        gross_sales - discounts - returns - cost_of_goods
        - (tickets * {ticket_cost} + interactions * {interaction_cost})
        AS DECIMAL(18, 2)
    ) AS contribution_margin
FROM costed
