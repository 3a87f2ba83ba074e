-- Profiling: the RFM summary as the lifetimes library defines it, in days, observed up to
-- {as_of}: frequency = purchase days - 1, recency = last - first purchase day, t = {as_of} - first
-- purchase day, monetary_value = mean spend of the repeat purchase days (0 for one-time buyers).
-- Quintile scores (5 = best) on days since the last purchase, purchase days and revenue, the RFM
-- code they make, and the segment the R and F scores put the customer in. Purchase days and spans
-- are computed once (`AS MATERIALIZED`), though named more than once.
WITH sales AS (
    SELECT customer_key, order_date, net_amount
    FROM core.order_line
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
),
purchase_day AS MATERIALIZED (
    SELECT customer_key, order_date, SUM(net_amount) AS amount
    FROM sales
    GROUP BY customer_key, order_date
),
span AS MATERIALIZED (
    SELECT
        customer_key,
        MIN(order_date) AS first_purchase,
        MAX(order_date) AS last_purchase,
        COUNT(*) AS purchase_days,
        SUM(amount) AS revenue
    FROM purchase_day
    GROUP BY customer_key
),
repeat_spend AS (
    SELECT d.customer_key, AVG(d.amount) AS monetary_value
    FROM purchase_day d
    JOIN span s ON s.customer_key = d.customer_key
    WHERE d.order_date > s.first_purchase
    GROUP BY d.customer_key
),
summary AS (
    SELECT
        s.customer_key,
        s.first_purchase,
        s.last_purchase,
        CAST(s.purchase_days - 1 AS BIGINT) AS frequency,
        CAST(day_number(s.last_purchase) - day_number(s.first_purchase) AS BIGINT) AS recency,
        CAST(day_number({as_of}) - day_number(s.first_purchase) AS BIGINT) AS t,
        CAST(COALESCE(r.monetary_value, 0) AS DECIMAL(18, 2)) AS monetary_value,
        CAST(day_number({as_of}) - day_number(s.last_purchase) AS BIGINT) AS days_since_last_purchase,
        CAST(s.revenue AS DECIMAL(18, 2)) AS revenue
    FROM span s
    LEFT JOIN repeat_spend r ON r.customer_key = s.customer_key
),
scored AS (
    SELECT
        *,
        NTILE(5) OVER (ORDER BY days_since_last_purchase DESC, customer_key) AS r_score,
        NTILE(5) OVER (ORDER BY frequency, customer_key) AS f_score,
        NTILE(5) OVER (ORDER BY revenue, customer_key) AS m_score
    FROM summary
)
SELECT
    customer_key,
    first_purchase,
    last_purchase,
    frequency,
    recency,
    t,
    monetary_value,
    days_since_last_purchase,
    revenue,
    r_score,
    f_score,
    m_score,
    CAST(r_score AS VARCHAR) || CAST(f_score AS VARCHAR) || CAST(m_score AS VARCHAR) AS rfm_code,
    CASE
        WHEN r_score >= 4 AND f_score >= 4 THEN 'champions'
        WHEN r_score = 3 AND f_score >= 4 THEN 'loyal'
        WHEN r_score <= 2 AND f_score >= 3 THEN 'at_risk'
        WHEN r_score >= 4 AND f_score = 1 THEN 'new'
        WHEN r_score >= 4 THEN 'potential_loyalist'
        WHEN r_score = 3 THEN 'need_attention'
        ELSE 'hibernating'
    END AS rfm_segment
FROM scored
