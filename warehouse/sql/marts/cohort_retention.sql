-- Persistency: cohort retention. A customer's cohort is the month of their first purchase;
-- retention in period k = customers of the cohort who bought in month cohort + k / cohort size.
-- Every period from 0 to the month of {as_of} has a row, zero when nobody bought. The active
-- months and the cohorts are computed once (`AS MATERIALIZED`), though named more than once.
WITH active AS MATERIALIZED (
    SELECT DISTINCT customer_key, CAST(date_trunc('month', order_date) AS DATE) AS month
    FROM core.sales_order
    WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND order_date <= {as_of}
),
cohort AS MATERIALIZED (
    SELECT customer_key, MIN(month) AS cohort_month
    FROM active
    GROUP BY customer_key
),
size AS (
    SELECT
        cohort_month,
        COUNT(*) AS cohort_size,
        (CAST(date_part('year', {as_of}) AS BIGINT) - CAST(date_part('year', cohort_month) AS BIGINT)) * 12
            + CAST(date_part('month', {as_of}) AS BIGINT) - CAST(date_part('month', cohort_month) AS BIGINT)
            AS last_period
    FROM cohort
    GROUP BY cohort_month
),
grid AS (
    SELECT cohort_month, cohort_size, unnest(range(0, last_period + 1)) AS period
    FROM size
),
activity AS (
    SELECT
        c.cohort_month,
        (CAST(date_part('year', a.month) AS BIGINT) - CAST(date_part('year', c.cohort_month) AS BIGINT)) * 12
            + CAST(date_part('month', a.month) AS BIGINT) - CAST(date_part('month', c.cohort_month) AS BIGINT)
            AS period,
        COUNT(*) AS active_customers
    FROM active a
    JOIN cohort c ON c.customer_key = a.customer_key
    GROUP BY 1, 2
)
SELECT
    g.cohort_month,
    CAST(g.period AS BIGINT) AS period,
    g.cohort_size,
    COALESCE(a.active_customers, 0) AS active_customers,
    CAST(COALESCE(a.active_customers, 0) AS DOUBLE) / g.cohort_size AS retention
FROM grid g
LEFT JOIN activity a ON a.cohort_month = g.cohort_month AND a.period = g.period
