-- Promotion: per campaign, touches and the open, click, response and conversion rates of the
-- targeted customers; the same rates in the control group where one was held out, and the uplift
-- (targeted rate - control rate); revenue of converted orders, the incremental revenue the uplift
-- implies, and return on the campaign's cost.
WITH touch AS (
    SELECT
        campaign_id,
        SUM(CASE WHEN NOT is_control THEN 1 ELSE 0 END) AS touches,
        SUM(CASE WHEN NOT is_control AND opened THEN 1 ELSE 0 END) AS opened,
        SUM(CASE WHEN NOT is_control AND clicked THEN 1 ELSE 0 END) AS clicked,
        SUM(CASE WHEN NOT is_control AND responded THEN 1 ELSE 0 END) AS responded,
        SUM(CASE WHEN NOT is_control AND converted THEN 1 ELSE 0 END) AS conversions,
        SUM(CASE WHEN NOT is_control AND converted THEN converted_revenue ELSE 0 END) AS attributed_revenue,
        SUM(CASE WHEN is_control THEN 1 ELSE 0 END) AS control_touches,
        SUM(CASE WHEN is_control AND responded THEN 1 ELSE 0 END) AS control_responded,
        SUM(CASE WHEN is_control AND converted THEN 1 ELSE 0 END) AS control_conversions
    FROM core.campaign_touch
    GROUP BY campaign_id
),
rate AS (
    SELECT
        t.*,
        CAST(opened AS DOUBLE) / NULLIF(touches, 0) AS open_rate,
        CAST(clicked AS DOUBLE) / NULLIF(touches, 0) AS click_rate,
        CAST(responded AS DOUBLE) / NULLIF(touches, 0) AS response_rate,
        CAST(conversions AS DOUBLE) / NULLIF(touches, 0) AS conversion_rate,
        CAST(control_responded AS DOUBLE) / NULLIF(control_touches, 0) AS control_response_rate,
        CAST(control_conversions AS DOUBLE) / NULLIF(control_touches, 0) AS control_conversion_rate,
        CAST(attributed_revenue AS DOUBLE) / NULLIF(conversions, 0) AS revenue_per_conversion
    FROM touch t
)
SELECT
    c.campaign_id,
    c.name,
    c.channel,
    c.offer,
    c.started_at,
    c.ended_at,
    COALESCE(r.touches, 0) AS touches,
    COALESCE(r.opened, 0) AS opened,
    COALESCE(r.clicked, 0) AS clicked,
    COALESCE(r.responded, 0) AS responded,
    COALESCE(r.conversions, 0) AS conversions,
    r.open_rate,
    r.click_rate,
    r.response_rate,
    r.conversion_rate,
    COALESCE(r.control_touches, 0) AS control_touches,
    r.control_response_rate,
    r.control_conversion_rate,
    r.response_rate - r.control_response_rate AS response_uplift,
    r.conversion_rate - r.control_conversion_rate AS conversion_uplift,
    CAST(COALESCE(r.attributed_revenue, 0) AS DECIMAL(18, 2)) AS attributed_revenue,
    CAST((r.conversion_rate - r.control_conversion_rate) * r.touches * r.revenue_per_conversion AS DECIMAL(18, 2))
        AS incremental_revenue,
    c.cost,
    (CAST(COALESCE(r.attributed_revenue, 0) AS DOUBLE) - CAST(c.cost AS DOUBLE))
        / NULLIF(CAST(c.cost AS DOUBLE), 0) AS roi
FROM core.campaign c
LEFT JOIN rate r ON r.campaign_id = c.campaign_id
