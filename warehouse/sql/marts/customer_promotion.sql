-- Promotion per customer: campaign touches (control group excluded) and how the customer
-- responded, with the revenue of the orders the campaigns converted. Counted per customer and
-- campaign first, then per customer, where the number of campaign rows is the number of distinct
-- campaigns: DataFusion counts distinct values per group with a set per customer, which took ten
-- times as long as the whole mart does this way.
WITH per_campaign AS (
    SELECT
        customer_key,
        campaign_id,
        COUNT(*) AS touches,
        SUM(CASE WHEN opened THEN 1 ELSE 0 END) AS opened,
        SUM(CASE WHEN clicked THEN 1 ELSE 0 END) AS clicked,
        SUM(CASE WHEN responded THEN 1 ELSE 0 END) AS responded,
        SUM(CASE WHEN converted THEN 1 ELSE 0 END) AS conversions,
        SUM(CASE WHEN converted THEN converted_revenue ELSE 0 END) AS attributed_revenue
    FROM core.campaign_touch
    WHERE customer_key IS NOT NULL AND NOT is_control
    GROUP BY customer_key, campaign_id
)
SELECT
    customer_key,
    SUM(touches) AS touches,
    COUNT(campaign_id) AS campaigns,
    SUM(opened) AS opened,
    SUM(clicked) AS clicked,
    SUM(responded) AS responded,
    SUM(conversions) AS conversions,
    CAST(SUM(responded) AS DOUBLE) / SUM(touches) AS response_rate,
    CAST(SUM(conversions) AS DOUBLE) / SUM(touches) AS conversion_rate,
    CAST(SUM(attributed_revenue) AS DECIMAL(18, 2)) AS attributed_revenue
FROM per_campaign
GROUP BY customer_key
