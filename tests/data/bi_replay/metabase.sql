-- Metabase 0.5x through pgjdbc 42.7: connection set-up.
SET extra_float_digits = 3;
SET application_name = 'Metabase v0.55.1 [sync]';
SHOW TRANSACTION ISOLATION LEVEL;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED;
show timezone;
-- DatabaseMetaData.getSchemas().
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_' OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_' OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_')) ORDER BY "TABLE_SCHEM";
-- Metabase's table listing, with the user's privileges.
with table_privileges as (
  select NULL as role, t.schemaname as schema, t.objectname as table,
    pg_catalog.has_table_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"', 'select') as select
  from (select schemaname, tablename as objectname from pg_catalog.pg_tables
        union select schemaname, viewname as objectname from pg_catalog.pg_views) t
  where t.schemaname !~ '^pg_' and t.schemaname <> 'information_schema'
    and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage'))
select t.* from table_privileges t;
-- describe-database: tables with their kinds and descriptions.
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) WHERE ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('marts', 'ml')) ORDER BY "type" ASC, "schema" ASC, "name" ASC;
-- describe-fields: the columns of a table, with their types and comments.
SELECT a.attname AS "name", t.typname AS "database-type", a.attnum - 1 AS "database-position", n.nspname AS "table-schema", c.relname AS "table-name", a.attnotnull AS "database-required", pg_catalog.format_type(a.atttypid, a.atttypmod) AS "type", pg_catalog.col_description(c.oid, a.attnum) AS "field-comment" FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_class AS c ON a.attrelid = c.oid JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid JOIN pg_catalog.pg_type AS t ON a.atttypid = t.oid WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname IN ('marts') AND c.relname IN ('customer_rfm') ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;
-- Field values and fingerprints of a sync.
SELECT "marts"."customer_rfm"."rfm_segment" AS "rfm_segment" FROM "marts"."customer_rfm" GROUP BY "marts"."customer_rfm"."rfm_segment" ORDER BY "marts"."customer_rfm"."rfm_segment" ASC LIMIT 1000;
SELECT count(*) AS "count", count(distinct "marts"."customer_rfm"."rfm_segment") AS "distinct" FROM "marts"."customer_rfm";
-- A question: revenue by month.
SELECT DATE_TRUNC('month', "marts"."sales_daily"."date") AS "date", SUM("marts"."sales_daily"."revenue") AS "sum" FROM "marts"."sales_daily" GROUP BY DATE_TRUNC('month', "marts"."sales_daily"."date") ORDER BY DATE_TRUNC('month', "marts"."sales_daily"."date") ASC;
