-- Promotion per customer: campaign touches (control group excluded) and how the customer
-- responded, with the revenue of the orders the campaigns converted.
SELECT
    customer_key,
    COUNT(*) AS touches,
    COUNT(DISTINCT campaign_id) AS campaigns,
    SUM(CASE WHEN opened THEN 1 ELSE 0 END) AS opened,
    SUM(CASE WHEN clicked THEN 1 ELSE 0 END) AS clicked,
    SUM(CASE WHEN responded THEN 1 ELSE 0 END) AS responded,
    SUM(CASE WHEN converted THEN 1 ELSE 0 END) AS conversions,
    CAST(SUM(CASE WHEN responded THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS response_rate,
    CAST(SUM(CASE WHEN converted THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS conversion_rate,
    CAST(SUM(CASE WHEN converted THEN converted_revenue ELSE 0 END) AS DECIMAL(18, 2)) AS attributed_revenue
FROM core.campaign_touch
WHERE customer_key IS NOT NULL AND NOT is_control
GROUP BY customer_key
