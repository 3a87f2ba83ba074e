-- Superset 4 through SQLAlchemy 2 (postgresql+psycopg): what the dialect asks on connect, then
-- "Test connection", a dataset preview and a chart. The inspector calls (schemas, tables,
-- columns, keys, indexes, comments) run for real in tests/python/pg_clients.py.
select pg_catalog.version();
select current_schema();
show transaction isolation level;
show standard_conforming_strings;
SELECT 1;
SELECT * FROM marts.customer_7p LIMIT 101;
SELECT segment AS segment, sum(net_sales) AS "SUM(net_sales)" FROM marts.customer_7p GROUP BY segment ORDER BY "SUM(net_sales)" DESC LIMIT 10000;
