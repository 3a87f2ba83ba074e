//! The point-in-time rule: churn features at a cut-off depend only on what was known on that
//! day. The warehouse crate's hand-worked company is loaded twice, once whole and once as it stood
//! on the cut-off day (rows dated later dropped, later dates not yet known), and the features at
//! the cut-off must be identical.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use tributary_models::churn::{collect, features_sql};
use tributary_warehouse::engine::Warehouse;
use tributary_warehouse::entity::{ColumnType, ENTITIES};
use tributary_warehouse::layout::{DataDir, Layer};
use tributary_warehouse::limits::QueryLimits;
use tributary_warehouse::refresh::{MartParams, refresh};

fn company_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../warehouse/tests/marts/company")
}

/// Load the company into a new warehouse; with `known_on`, only as it stood on that day.
async fn company(known_on: Option<NaiveDate>) -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::new(DataDir::new(dir.path()), QueryLimits::default()).unwrap();
    let ctx = SessionContext::new();
    for entity in ENTITIES {
        let file = company_dir().join(format!("{}.csv", entity.name));
        if !file.exists() {
            continue;
        }
        let schema = Schema::new(
            entity
                .columns
                .iter()
                .map(|c| Field::new(c.name, c.kind.arrow(), true))
                .collect::<Vec<_>>(),
        );
        ctx.register_csv(
            entity.name,
            file.to_str().unwrap(),
            CsvReadOptions::new().schema(&schema),
        )
        .await
        .unwrap();
        let mut select = Vec::new();
        let mut filter = "true".to_string();
        for column in entity.columns {
            let dated = matches!(column.kind, ColumnType::Date | ColumnType::Timestamp);
            match known_on {
                Some(day) if dated && entity.month_of == Some(column.name) => {
                    filter = format!("CAST({} AS DATE) <= DATE '{day}'", column.name);
                    select.push(column.name.to_string());
                }
                Some(day) if dated => select.push(format!(
                    "CASE WHEN CAST({0} AS DATE) <= DATE '{day}' THEN {0} END AS {0}",
                    column.name
                )),
                _ => select.push(column.name.to_string()),
            }
        }
        let sql = format!("SELECT {} FROM {} WHERE {filter}", select.join(", "), entity.name);
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        warehouse
            .store()
            .replace(Layer::Staging, entity.name, batches, Default::default())
            .await
            .unwrap();
    }
    refresh(&warehouse, &MartParams::default()).await.unwrap();
    (dir, warehouse)
}

#[tokio::test]
async fn churn_features_use_nothing_after_the_cut_off() {
    let cutoff = NaiveDate::from_ymd_opt(2024, 3, 15).unwrap();
    let (_whole_dir, whole) = company(None).await;
    let (_then_dir, then) = company(Some(cutoff)).await;

    // The test means something only if the company has data on both sides of the cut-off.
    let later = collect(
        &whole,
        &format!("SELECT COUNT(*) AS n FROM core.sales_order WHERE order_date > DATE '{cutoff}'"),
    )
    .await
    .unwrap();
    let later = pretty_format_batches(&later).unwrap().to_string();
    assert!(!later.contains("| 0 "), "no orders after the cut-off:\n{later}");

    // Everything but the label, which is about the future by definition.
    let features = |sql: String| format!("SELECT * EXCEPT (churned) FROM ({sql}) ORDER BY customer_key");
    let known = collect(&whole, &features(features_sql(cutoff, 90, true)))
        .await
        .unwrap();
    let as_then = collect(&then, &features(features_sql(cutoff, 90, true))).await.unwrap();
    let known = pretty_format_batches(&known).unwrap().to_string();
    let as_then = pretty_format_batches(&as_then).unwrap().to_string();
    println!("features at {cutoff}:\n{known}");
    assert!(known.lines().count() > 5, "some customers are scored:\n{known}");
    assert_eq!(
        known, as_then,
        "features at the cut-off changed when later rows were removed"
    );

    // And the features do move with the cut-off (the comparison above is not of constants).
    let later_cutoff = NaiveDate::from_ymd_opt(2024, 4, 30).unwrap();
    let moved = collect(&whole, &features(features_sql(later_cutoff, 90, true)))
        .await
        .unwrap();
    assert_ne!(pretty_format_batches(&moved).unwrap().to_string(), known);
}
