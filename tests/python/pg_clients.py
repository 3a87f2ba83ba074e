"""psycopg and SQLAlchemy against Tributary's PostgreSQL endpoint, as analysts and Superset use them.

Usage: python pg_clients.py postgresql://user:password@127.0.0.1:PORT/tributary
Prints "psycopg ok" and "sqlalchemy ok"; any failure raises.
"""

import sys

import psycopg
import sqlalchemy
from sqlalchemy import inspect, text

url = sys.argv[1]

# psycopg 3: server-side parameters (extended protocol), text and binary results.
with psycopg.connect(url, autocommit=True) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM marts.customer_7p")
        (customers,) = cur.fetchone()
        assert customers > 0, customers
        cur.execute(
            "SELECT customer_key, net_sales FROM marts.customer_7p WHERE net_sales > %s ORDER BY net_sales DESC LIMIT %s",
            (100.0, 3),
        )
        rows = cur.fetchall()
        assert 0 < len(rows) <= 3, rows
        assert rows[0][1] >= rows[-1][1], rows
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT rfm_segment, count(*) AS n FROM marts.customer_rfm GROUP BY 1 ORDER BY 2 DESC")
        segments = cur.fetchall()
        assert sum(n for _, n in segments) > 0, segments
    try:
        conn.execute("DELETE FROM core.customer")
        raise AssertionError("DELETE was accepted")
    except psycopg.errors.ReadOnlySqlTransaction as refused:
        assert "read-only" in str(refused), refused
print("psycopg ok")

# SQLAlchemy, as Superset connects, lists schemas, tables and columns, and runs a chart's query.
engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
inspector = inspect(engine)
schemas = inspector.get_schema_names()
assert {"core", "marts", "ml"} <= set(schemas), schemas
tables = inspector.get_table_names(schema="marts")
assert "customer_7p" in tables and "customer_rfm" in tables, tables
# What Superset asks when a dataset is added: the columns with their types, keys and indexes
# (the warehouse has neither), and the table reflected whole.
columns = {c["name"]: c for c in inspector.get_columns("customer_rfm", schema="marts")}
assert {"customer_key", "rfm_segment", "monetary_value"} <= set(columns), columns
assert isinstance(columns["customer_key"]["type"], sqlalchemy.BigInteger), columns["customer_key"]
assert isinstance(columns["rfm_segment"]["type"], sqlalchemy.String) and columns["rfm_segment"]["default"] is None, columns["rfm_segment"]
assert inspector.get_pk_constraint("customer_rfm", schema="marts")["constrained_columns"] == []
assert inspector.get_indexes("customer_rfm", schema="marts") == []
assert inspector.get_unique_constraints("customer_rfm", schema="marts") == []
reflected = sqlalchemy.Table("customer_7p", sqlalchemy.MetaData(), schema="marts", autoload_with=engine)
assert "rfm_segment" in reflected.c and "net_sales" in reflected.c, list(reflected.c.keys())
assert inspector.has_table("customer_rfm", schema="marts")
assert inspector.get_foreign_keys("customer_rfm", schema="marts") == []
assert inspector.get_table_comment("customer_rfm", schema="marts") == {"text": None}
assert inspector.get_view_names(schema="marts") == []
with engine.connect() as conn:
    result = conn.execute(
        text("SELECT region, sum(net_sales) AS sales FROM marts.customer_7p GROUP BY region ORDER BY 2 DESC LIMIT :n"),
        {"n": 5},
    ).fetchall()
    assert result and result[0][1] is not None, result
    columns = [
        row[0]
        for row in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"
            ),
            {"schema": "marts", "table": "customer_rfm"},
        )
    ]
    assert "rfm_segment" in columns and "monetary_value" in columns, columns
print("sqlalchemy ok")
