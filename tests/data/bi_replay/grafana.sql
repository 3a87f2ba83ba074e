-- Grafana 11, PostgreSQL data source: "Save & test", then the query builder and a time series.
SELECT 1;
SELECT current_setting('server_version_num')::int / 100 AS version;
SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS "table" FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') ORDER BY CASE WHEN quote_ident(table_schema) = ANY(current_schemas(false)) THEN 0 ELSE 1 END, 1;
SELECT DISTINCT quote_ident(table_schema) AS schema_name FROM information_schema.tables WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1;
SELECT quote_ident(table_name) AS "table" FROM information_schema.tables WHERE quote_ident(table_schema) = 'marts' ORDER BY 1;
SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns WHERE quote_ident(table_schema) = 'marts' AND quote_ident(table_name) = 'sales_daily';
SELECT date AS "time", sum(revenue) AS revenue FROM marts.sales_daily WHERE date BETWEEN '2025-01-01T00:00:00Z' AND '2026-09-30T23:59:59Z' GROUP BY 1 ORDER BY 1;
SELECT date_trunc('month', date) AS "time", region AS metric, sum(revenue) AS value FROM marts.sales_daily WHERE date >= '2025-01-01' GROUP BY 1, 2 ORDER BY 1, 2;
