-- Rollup behind the semantic layer: distinct buying customers per period at every grain, by region
-- and segment (a customer has one of each, so these add up; distinct counts over time do not, hence
-- one set of rows per grain).
-- `buyer` holds each customer once per buying day, region and segment, so a day's count is its
-- rows; `buyer_month` the same per month, from which months, quarters and years are counted (a
-- month lies in one quarter and one year). Both are computed once (`AS MATERIALIZED`: DataFusion
-- computes a CTE again wherever it is named). Before, every buyer row was repeated for each of the
-- five grains and all of them grouped by five columns for a distinct count: five times the rows,
-- and one column more than the fast paths of our partial aggregation take.
WITH buyer AS MATERIALIZED (
    SELECT DISTINCT
        o.customer_key,
        o.order_date,
        COALESCE(o.region, 'unknown') AS region,
        COALESCE(c.segment, 'unknown') AS segment
    FROM core.sales_order o
    LEFT JOIN core.customer c ON c.customer_key = o.customer_key
    WHERE o.status <> 'cancelled' AND o.customer_key IS NOT NULL AND o.order_date <= {as_of}
),
buyer_month AS MATERIALIZED (
    SELECT DISTINCT customer_key, CAST(date_trunc('month', order_date) AS DATE) AS month, region, segment
    FROM buyer
)
SELECT 'day' AS grain, order_date AS period, region, segment, COUNT(*) AS active_customers
FROM buyer
GROUP BY order_date, region, segment
UNION ALL
SELECT 'week', CAST(date_trunc('week', order_date) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer
GROUP BY 2, 3, 4
UNION ALL
SELECT 'month', month, region, segment, COUNT(*)
FROM buyer_month
GROUP BY month, region, segment
UNION ALL
SELECT 'quarter', CAST(date_trunc('quarter', month) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer_month
GROUP BY 2, 3, 4
UNION ALL
SELECT 'year', CAST(date_trunc('year', month) AS DATE), region, segment, COUNT(DISTINCT customer_key)
FROM buyer_month
GROUP BY 2, 3, 4
