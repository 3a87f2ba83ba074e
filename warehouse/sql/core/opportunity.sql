-- Opportunities with the resolved customer and the amount weighted by the win probability.
SELECT
    o.opportunity_id,
    s.customer_key,
    o.name,
    o.stage,
    o.amount,
    o.probability,
    CAST(CAST(o.amount AS DOUBLE) * COALESCE(o.probability, 0) AS DECIMAL(18, 2)) AS weighted_amount,
    o.expected_close,
    o.created_at,
    COALESCE(o.is_closed, false) AS is_closed,
    COALESCE(o.is_won, false) AS is_won,
    o.type,
    o.owner
FROM staging.opportunity o
LEFT JOIN core.customer_source s ON s.source_system = 'crm' AND s.customer_id = o.customer_id
