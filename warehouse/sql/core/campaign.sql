-- Campaigns; cost is the actual cost where known, else the budget.
SELECT
    campaign_id,
    name,
    lower(trim(channel)) AS channel,
    status,
    started_at,
    ended_at,
    budget,
    actual_cost,
    COALESCE(actual_cost, budget) AS cost,
    offer,
    target_category
FROM staging.campaign
