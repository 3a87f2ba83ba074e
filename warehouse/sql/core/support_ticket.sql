-- Support cases with the resolved customer and the time to resolve them.
SELECT
    t.ticket_id,
    s.customer_key,
    t.contact_id,
    t.opened_at,
    t.closed_at,
    lower(trim(t.channel)) AS channel,
    lower(trim(t.priority)) AS priority,
    t.category,
    lower(trim(t.status)) AS status,
    t.satisfaction,
    t.first_response_s,
    CAST(date_part('epoch', t.closed_at) - date_part('epoch', t.opened_at) AS BIGINT) AS resolution_s
FROM staging.support_ticket t
LEFT JOIN core.customer_source s ON s.source_system = 'crm' AND s.customer_id = t.customer_id
