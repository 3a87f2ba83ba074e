-- Prospecting: the sales pipeline by stage (open and closed), with amounts weighted by win
-- probability, and the win rate of the closed ones.
SELECT
    stage,
    is_closed,
    is_won,
    COUNT(*) AS opportunities,
    COUNT(DISTINCT customer_key) AS customers,
    CAST(SUM(amount) AS DECIMAL(18, 2)) AS amount,
    CAST(SUM(weighted_amount) AS DECIMAL(18, 2)) AS weighted_amount,
    AVG(probability) AS mean_probability
FROM core.opportunity
GROUP BY stage, is_closed, is_won
