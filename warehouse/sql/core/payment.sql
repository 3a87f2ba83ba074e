-- Payments with the customer and timing: days_to_pay from invoice date (for days sales
-- outstanding), days_late past the due date when the source does not say.
SELECT
    p.payment_id,
    p.invoice_id,
    i.customer_key,
    p.amount,
    p.paid_at,
    lower(trim(p.method)) AS method,
    COALESCE(
        p.days_late,
        CAST(GREATEST(day_number(p.paid_at) - day_number(i.due_at), 0) AS BIGINT)
    ) AS days_late,
    CAST(day_number(p.paid_at) - day_number(i.invoiced_at) AS BIGINT) AS days_to_pay
FROM staging.payment p
LEFT JOIN core.invoice i ON i.invoice_id = p.invoice_id
