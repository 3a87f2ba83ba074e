-- Rollup behind the semantic layer: campaign touches of the targeted customers and of the control
-- groups by send day (a control member, never sent anything, by the campaign's start), campaign,
-- channel, and the customer's region and segment. The Campaigns dashboard reads this, never the
-- touches, which number one per customer reached.
SELECT
    CAST(COALESCE(t.sent_at, k.started_at) AS DATE) AS date,
    k.name AS campaign,
    COALESCE(k.channel, 'unknown') AS channel,
    COALESCE(c.region, 'unknown') AS region,
    COALESCE(c.segment, 'unknown') AS segment,
    SUM(CASE WHEN NOT t.is_control THEN 1 ELSE 0 END) AS touches,
    SUM(CASE WHEN NOT t.is_control AND t.responded THEN 1 ELSE 0 END) AS responses,
    SUM(CASE WHEN NOT t.is_control AND t.converted THEN 1 ELSE 0 END) AS conversions,
    CAST(SUM(CASE WHEN NOT t.is_control AND t.converted THEN t.converted_revenue ELSE 0 END) AS DECIMAL(18, 2))
        AS attributed_revenue,
    SUM(CASE WHEN t.is_control THEN 1 ELSE 0 END) AS control_touches,
    SUM(CASE WHEN t.is_control AND t.responded THEN 1 ELSE 0 END) AS control_responses,
    SUM(CASE WHEN t.is_control AND t.converted THEN 1 ELSE 0 END) AS control_conversions
FROM core.campaign_touch t
JOIN core.campaign k ON k.campaign_id = t.campaign_id
LEFT JOIN core.customer c ON c.customer_key = t.customer_key
GROUP BY 1, 2, 3, 4, 5
