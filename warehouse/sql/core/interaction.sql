-- CRM activities (calls, emails, meetings, chats) with the resolved customer.
SELECT
    i.interaction_id,
    s.customer_key,
    i.contact_id,
    i.occurred_at,
    lower(trim(i.channel)) AS channel,
    lower(trim(i.direction)) AS direction,
    i.type,
    i.duration_s,
    i.outcome,
    i.campaign_id,
    i.agent,
    i.sentiment
FROM staging.interaction i
LEFT JOIN core.customer_source s ON s.source_system = 'crm' AND s.customer_id = i.customer_id
