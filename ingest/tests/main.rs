//! Integration tests of the ingest crate, one module per area.

mod chunks;
mod push;
mod sample_company;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use tributary_warehouse::layout::Layer;
use tributary_warehouse::store::Store;

/// Every value of a one-column query over `tables`, as text.
async fn texts(store: &Store, tables: &[(Layer, &str)], sql: &str) -> Vec<String> {
    let batches = store.query(tables, sql).await.unwrap();
    let mut out = Vec::new();
    for batch in batches {
        let text = cast(batch.column(0), &DataType::Utf8).unwrap();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend((0..text.len()).map(|i| text.value(i).to_string()));
    }
    out
}
