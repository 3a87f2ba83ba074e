-- Leads; a converted lead points at the customer it became.
SELECT
    l.lead_id,
    l.company,
    l.email,
    l.phone,
    l.country,
    l.source,
    l.status,
    l.created_at,
    COALESCE(l.is_converted, false) AS is_converted,
    l.converted_at,
    s.customer_key AS converted_customer_key
FROM staging.lead l
LEFT JOIN core.customer_source s ON s.source_system = 'crm' AND s.customer_id = l.converted_customer_id
