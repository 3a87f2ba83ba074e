//! Customer keys across refreshes, on the hand-worked company (`tests/marts/company`): numbers
//! from 1 that a customer keeps while any of its records is known, never given to another.

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tributary_warehouse::engine::Warehouse;
use tributary_warehouse::layout::Layer;
use tributary_warehouse::profile::profile;
use tributary_warehouse::refresh::{MartParams, refresh};

use crate::marts::company;

/// Each source record and its customer's key, as `system:id=key`, in record order.
async fn keys(warehouse: &Warehouse) -> Vec<String> {
    let result = warehouse
        .sql("SELECT source_system || ':' || customer_id || '=' || CAST(customer_key AS VARCHAR) FROM core.customer_source ORDER BY source_system, customer_id")
        .await
        .unwrap();
    let mut rows = Vec::new();
    for batch in &result.batches {
        let text = ArrayFormatter::try_new(batch.column(0).as_ref(), &FormatOptions::default()).unwrap();
        rows.extend((0..batch.num_rows()).map(|row| text.value(row).to_string()));
    }
    rows
}

/// Replace `staging.customer` with `sql`'s rows (a query over the current ones).
async fn restage(warehouse: &Warehouse, sql: &str) {
    let rows = warehouse.sql(sql).await.unwrap();
    warehouse
        .store()
        .replace(Layer::Staging, "customer", rows.batches, Default::default())
        .await
        .unwrap();
    let params = MartParams {
        min_pair_orders: 2,
        ..MartParams::default()
    };
    refresh(warehouse, &params).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_keep_their_keys_across_refreshes_and_new_ones_get_the_next_number() {
    let (_dir, warehouse) = company().await;
    // Five customers, numbered in record order (CRM records sort first).
    assert_eq!(
        keys(&warehouse).await,
        [
            "crm:A1=1", "crm:A2=2", "crm:A4=3", "erp:E1=1", "erp:E2=2", "erp:E3=4", "erp:E5=5"
        ]
    );

    // A CRM account for Gamma (E3's e-mail) that sorts before every other record: Gamma keeps 4
    // (a key made from the first record would have changed). Beta's ERP record changes its e-mail
    // and is no longer Beta's: the CRM account keeps 2. The ERP record and a new account are new
    // customers, numbered in record order: the account A9 is 6, the ERP record E2 is 7.
    restage(
        &warehouse,
        "SELECT * FROM staging.customer WHERE customer_id <> 'E2' \
         UNION ALL SELECT source_system, customer_id, name, 'accounts@beta-ops.example', phone, tax_id, segment, \
           industry, country, region, city, created_at, is_active FROM staging.customer WHERE customer_id = 'E2' \
         UNION ALL SELECT 'crm', 'A0', name, email, phone, tax_id, segment, industry, country, region, city, \
           created_at, is_active FROM staging.customer WHERE customer_id = 'E3' \
         UNION ALL SELECT source_system, 'A9', 'Zeta BV', 'info@zeta.example', phone, tax_id, segment, industry, \
           'NL', region, 'Utrecht', created_at, is_active FROM staging.customer WHERE customer_id = 'A4'",
    )
    .await;
    assert_eq!(
        keys(&warehouse).await,
        [
            "crm:A0=4", "crm:A1=1", "crm:A2=2", "crm:A4=3", "crm:A9=6", "erp:E1=1", "erp:E2=7", "erp:E3=4", "erp:E5=5"
        ]
    );

    // Every order line finds its customer by the numbered keys.
    let facts = warehouse
        .sql("SELECT COUNT(*) FROM core.order_line l LEFT JOIN core.customer c USING (customer_key) WHERE c.name IS NULL")
        .await
        .unwrap();
    let unresolved = ArrayFormatter::try_new(facts.batches[0].column(0).as_ref(), &FormatOptions::default())
        .unwrap()
        .value(0)
        .to_string();
    assert_eq!(unresolved, "0");

    // The customer with the highest key (E2, 7) leaves: its key is not given to the next new
    // customers, an account A8 and an ERP customer numbered 3 (as Delta's key is 3).
    restage(
        &warehouse,
        "SELECT * FROM staging.customer WHERE customer_id <> 'E2' \
         UNION ALL SELECT source_system, 'A8', 'Eta Oy', 'info@eta.example', phone, tax_id, segment, industry, \
           'FI', region, 'Espoo', created_at, is_active FROM staging.customer WHERE customer_id = 'A4' \
         UNION ALL SELECT source_system, '3', 'Theta SRL', 'info@theta.example', phone, tax_id, segment, industry, \
           'IT', region, 'Milan', created_at, is_active FROM staging.customer WHERE customer_id = 'E5'",
    )
    .await;
    let now = keys(&warehouse).await;
    assert!(now.contains(&"crm:A8=8".to_string()), "{now:?}");
    assert!(now.contains(&"erp:3=9".to_string()), "{now:?}");
    assert!(!now.iter().any(|k| k.ends_with("=7")), "{now:?}");

    // `3` is Delta's key and Theta's ERP number: the profile names both; `key:3` is Delta alone.
    let both = profile(&warehouse, "3").await.unwrap_err().to_string();
    assert!(
        both.contains("key:3 Delta Inc") && both.contains("key:9 Theta SRL"),
        "{both}"
    );
    let delta = profile(&warehouse, "key:3").await.unwrap();
    assert_eq!(delta["customer"]["name"], "Delta Inc", "{delta:?}");
}
