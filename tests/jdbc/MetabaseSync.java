// What Metabase does through pgjdbc when it connects to a PostgreSQL database, syncs its schema and
// draws a first question, against Tributary's PostgreSQL endpoint: run by tests/serve.rs with
// `java -cp <pgjdbc jar> MetabaseSync.java URL USER PASSWORD` (Java 11+ runs a source file
// directly). Prints "jdbc ok"; any failure throws.

import java.sql.*;
import java.util.*;

public class MetabaseSync {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "Metabase v0.55.1 [sync]");
        props.setProperty("OpenSourceSubProtocolOverride", "true");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            // Metabase's connection set-up.
            conn.setReadOnly(true);
            conn.setAutoCommit(true);
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_UNCOMMITTED);
            DatabaseMetaData md = conn.getMetaData();
            System.out.println("server: " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());

            // Sync: schemas, then tables of each schema.
            Set<String> schemas = new TreeSet<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            check(schemas.containsAll(List.of("core", "marts", "ml")), "schemas: " + schemas);
            Set<String> tables = new TreeSet<>();
            String[] kinds = {"TABLE", "PARTITIONED TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW"};
            try (ResultSet rs = md.getTables(null, "marts", "%", kinds)) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            check(tables.contains("customer_7p") && tables.contains("customer_rfm"), "marts tables: " + tables);

            // Sync of one table: its columns with their types, primary key and foreign keys.
            Map<String, String> columns = new LinkedHashMap<>();
            try (ResultSet rs = md.getColumns(null, "marts", "customer_rfm", null)) {
                while (rs.next()) columns.put(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"));
            }
            check(columns.keySet().containsAll(List.of("customer_key", "rfm_segment", "monetary_value")), "columns: " + columns);
            check("int8".equals(columns.get("customer_key")), "customer_key type: " + columns);
            check("text".equals(columns.get("rfm_segment")) || "varchar".equals(columns.get("rfm_segment")), "rfm_segment type: " + columns);
            try (ResultSet rs = md.getPrimaryKeys(null, "marts", "customer_rfm")) {
                check(!rs.next(), "no primary key");
            }
            try (ResultSet rs = md.getImportedKeys(null, "marts", "customer_rfm")) {
                check(!rs.next(), "no foreign keys");
            }

            // A first question: a prepared statement with parameters, then the field values Metabase
            // samples for filters.
            try (PreparedStatement st = conn.prepareStatement(
                    "SELECT rfm_segment, count(*) AS customers FROM marts.customer_rfm WHERE frequency >= ? GROUP BY rfm_segment ORDER BY 2 DESC LIMIT ?")) {
                st.setInt(1, 1);
                st.setInt(2, 5);
                int rows = 0;
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) {
                        check(rs.getLong("customers") > 0, "customers counted");
                        rows++;
                    }
                }
                check(rows > 0, "rows from the question");
            }
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT \"marts\".\"customer_rfm\".\"rfm_segment\" AS \"rfm_segment\" FROM \"marts\".\"customer_rfm\" GROUP BY \"marts\".\"customer_rfm\".\"rfm_segment\" ORDER BY \"marts\".\"customer_rfm\".\"rfm_segment\" ASC LIMIT 1000")) {
                check(rs.next(), "field values");
            }
        }
        System.out.println("jdbc ok");
    }
}
