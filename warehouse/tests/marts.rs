//! The 7P marts pinned by sqllogictest files (`tests/marts/*.slt`) on a small company whose
//! answers were worked out by hand (`tests/marts/company/*.csv`; the working is in the .slt
//! comments). The company is loaded as staging tables of the canonical shape, `refresh` builds
//! `core` and `marts` from them, and every query goes through `Warehouse::sql`, as users' do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Float32Array, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, SessionContext};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tributary_warehouse::engine::{QueryError, Warehouse};
use tributary_warehouse::entity::ENTITIES;
use tributary_warehouse::layout::{DataDir, Layer};
use tributary_warehouse::limits::QueryLimits;
use tributary_warehouse::refresh::{MartParams, explain_mart, refresh};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/marts")
}

/// Load every `company/<entity>.csv` into `staging.<entity>` with the canonical types.
async fn load_company(warehouse: &Warehouse) {
    let ctx = SessionContext::new();
    for entity in ENTITIES {
        let file = fixtures().join("company").join(format!("{}.csv", entity.name));
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
        let batches = ctx
            .read_csv(
                file.to_str().unwrap(),
                CsvReadOptions::new().schema(&schema).has_header(true),
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        warehouse
            .store()
            .replace(Layer::Staging, entity.name, batches, Default::default())
            .await
            .unwrap();
    }
}

/// The hand-worked company, loaded and refreshed in a temporary data directory.
pub async fn company() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::new(DataDir::new(dir.path()), QueryLimits::default()).unwrap();
    load_company(&warehouse).await;
    let params = MartParams {
        min_pair_orders: 2,
        ..MartParams::default()
    };
    refresh(&warehouse, &params).await.unwrap();
    (dir, warehouse)
}

/// Runs sqllogictest records against `Warehouse::sql`.
struct Tributary {
    warehouse: Arc<Warehouse>,
}

/// Floats to six decimals without trailing zeros, so hand-worked figures can be written plainly.
fn float(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[async_trait]
impl AsyncDB for Tributary {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QueryError> {
        let result = self.warehouse.sql(sql).await?;
        let types = result
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
                    DefaultColumnType::FloatingPoint
                }
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64 => DefaultColumnType::Integer,
                _ => DefaultColumnType::Text,
            })
            .collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &result.batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(column, formatter)| {
                            if column.is_null(row) {
                                return "NULL".to_string();
                            }
                            if let Some(f) = column.as_any().downcast_ref::<Float64Array>() {
                                return float(f.value(row));
                            }
                            if let Some(f) = column.as_any().downcast_ref::<Float32Array>() {
                                return float(f64::from(f.value(row)));
                            }
                            formatter.value(row).to_string()
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tributary"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_7p_mart_matches_the_hand_worked_answers() {
    let (_dir, warehouse) = company().await;
    let warehouse = Arc::new(warehouse);
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "one file per P at least: {files:?}");
    for file in files {
        let shared = warehouse.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let warehouse = shared.clone();
            async move { Ok(Tributary { warehouse }) }
        });
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_refresh_rebuilds_nothing_and_a_change_rebuilds_what_reads_it() {
    let (_dir, warehouse) = company().await;
    let params = MartParams {
        min_pair_orders: 2,
        ..MartParams::default()
    };
    let again = refresh(&warehouse, &params).await.unwrap();
    let rebuilt: Vec<_> = again
        .tables
        .iter()
        .filter(|t| t.rebuilt)
        .map(|t| t.table.clone())
        .collect();
    assert!(rebuilt.is_empty(), "nothing changed, yet rebuilt {rebuilt:?}");
    assert!(again.customers.is_none());

    // A new ticket (a copy of Beta's T3): the ticket fact and what reads it are rebuilt, sales are not.
    let current = warehouse
        .sql("SELECT * FROM staging.support_ticket ORDER BY ticket_id")
        .await
        .unwrap()
        .batches;
    let schema = current[0].schema();
    let mut columns = Vec::new();
    for field in schema.fields() {
        let base = current[0].column_by_name(field.name()).unwrap();
        // Append a copy of the last row with a new id: the simplest well-typed new ticket.
        let last = base.slice(base.len() - 1, 1);
        let column = if field.name() == "ticket_id" {
            let id = datafusion::arrow::array::StringArray::from(vec!["T9"]);
            datafusion::arrow::compute::cast(&id, field.data_type()).unwrap()
        } else {
            last
        };
        columns.push(column);
    }
    let new_row = datafusion::arrow::record_batch::RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut all = current.clone();
    all.push(new_row);
    warehouse
        .store()
        .replace(Layer::Staging, "support_ticket", all, Default::default())
        .await
        .unwrap();
    let after = refresh(&warehouse, &params).await.unwrap();
    let rebuilt: Vec<_> = after
        .tables
        .iter()
        .filter(|t| t.rebuilt)
        .map(|t| t.table.as_str())
        .collect();
    assert!(rebuilt.contains(&"core.support_ticket"), "{rebuilt:?}");
    assert!(rebuilt.contains(&"marts.customer_profitability"), "{rebuilt:?}");
    assert!(rebuilt.contains(&"marts.customer_7p"), "{rebuilt:?}");
    assert!(!rebuilt.contains(&"core.order_line"), "{rebuilt:?}");
    assert!(!rebuilt.contains(&"marts.customer_rfm"), "{rebuilt:?}");
    let tickets = warehouse
        .sql("SELECT tickets FROM marts.customer_profitability p JOIN core.customer c USING (customer_key) WHERE c.crm_account_id = 'A2'")
        .await
        .unwrap();
    let tickets = datafusion::arrow::util::pretty::pretty_format_batches(&tickets.batches)
        .unwrap()
        .to_string();
    assert!(
        tickets.contains("| 2 "),
        "the copy of T3 is Beta's second ticket:\n{tickets}"
    );
}

#[tokio::test]
async fn a_mart_runs_as_the_refresh_builds_it_with_the_baskets_paired_by_the_self_join() {
    let (_dir, warehouse) = company().await;
    let params = MartParams {
        min_pair_orders: 2,
        ..MartParams::default()
    };
    let (plans, seconds) = explain_mart(&warehouse, &params, "product_association").await.unwrap();
    // Each materialized CTE's plan, then the statement's, with what each step did.
    for heading in [
        "product_basket AS MATERIALIZED (",
        "category_basket AS MATERIALIZED (",
        "marts.product_association (",
    ] {
        assert!(plans.contains(heading), "{heading}\n{plans}");
    }
    assert!(plans.contains("output_rows="), "{plans}");
    // Both baskets' pairs, in the refresh's own session (the rule is in the warehouse's sessions).
    assert_eq!(
        plans
            .matches("SelfJoinExec: on=order_key, filter=left.item < right.item")
            .count(),
        2,
        "{plans}"
    );
    assert!(
        !plans
            .lines()
            .any(|l| l.contains("HashJoinExec") && l.contains("(order_key@")),
        "{plans}"
    );
    assert!(seconds > 0.0);
    let rows = warehouse
        .sql("SELECT COUNT(*) FROM marts.product_association")
        .await
        .unwrap();
    assert!(
        plans.contains(&format!(
            "marts.product_association ({} rows)",
            datafusion::arrow::util::display::array_value_to_string(rows.batches[0].column(0), 0).unwrap()
        )),
        "{plans}"
    );
    let unknown = explain_mart(&warehouse, &params, "no_such_mart").await.unwrap_err();
    assert!(unknown.to_string().contains("no mart named no_such_mart"), "{unknown}");
}
