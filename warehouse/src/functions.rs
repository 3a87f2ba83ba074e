//! SQL functions Tributary adds to every session (queries, refreshes, the servers):
//!
//! - `stable_key(text) -> bigint`: the key a text id keeps across refreshes (products by SKU), the
//!   same hash that keys customers;
//! - `day_number(date) -> bigint`: days since 1970-01-01, so that day differences read
//!   `day_number(b) - day_number(a)` in every SQL dialect the marts must run in (DuckDB defines it
//!   as a macro in the benchmarks);
//! - `as_of('layer.table', version | 'time')`: a table as it was (time travel over the Delta log),
//!   in sessions made by [`crate::engine::Warehouse::context`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, Date32Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use crate::identity::stable_key;

/// Register every function in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(stable_key_udf());
    ctx.register_udf(day_number_udf());
}

fn stable_key_udf() -> ScalarUDF {
    create_udf(
        "stable_key",
        vec![DataType::Utf8],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let text = cast(&arrays[0], &DataType::Utf8)?;
            let text = text
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8 gives a StringArray");
            let keys: Int64Array = text.iter().map(|v| v.map(stable_key)).collect();
            Ok(ColumnarValue::Array(Arc::new(keys)))
        }),
    )
}

fn day_number_udf() -> ScalarUDF {
    create_udf(
        "day_number",
        vec![DataType::Date32],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let dates = cast(&arrays[0], &DataType::Date32)?;
            let dates = dates
                .as_any()
                .downcast_ref::<Date32Array>()
                .expect("cast to Date32 gives a Date32Array");
            let days: Int64Array = dates.iter().map(|d| d.map(i64::from)).collect();
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            Ok(if scalar {
                ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&days, 0)?)
            } else {
                ColumnarValue::Array(Arc::new(days))
            })
        }),
    )
}

/// `as_of('layer.table', version | 'timestamp')`: a table as it was at a version of its history or
/// at a moment (RFC 3339, or `YYYY-MM-DD[ HH:MM:SS]` in UTC), e.g.
/// `SELECT COUNT(*) FROM as_of('core.customer', 3)` or
/// `SELECT * FROM as_of('marts.customer_7p', '2026-11-01 06:00:00')`.
#[derive(Debug)]
pub struct AsOfFunction {
    store: crate::store::Store,
    role: crate::access::Role,
}

impl AsOfFunction {
    /// The function over the tables of `store` that `role` may read, masked as `role` sees them.
    pub fn new(store: crate::store::Store, role: crate::access::Role) -> Self {
        Self { store, role }
    }
}

impl datafusion::catalog::TableFunctionImpl for AsOfFunction {
    fn call_with_args(
        &self,
        args: datafusion::catalog::TableFunctionArgs,
    ) -> datafusion::error::Result<Arc<dyn datafusion::catalog::TableProvider>> {
        use datafusion::error::DataFusionError;
        use datafusion::logical_expr::Expr;
        use datafusion::scalar::ScalarValue;

        let usage = || {
            DataFusionError::Plan(
                "as_of takes a table name and a version or a time: as_of('core.customer', 3) or \
                 as_of('core.customer', '2026-11-01 06:00:00')"
                    .into(),
            )
        };
        let exprs = args.exprs();
        let [table, when] = exprs else {
            return Err(usage());
        };
        let Expr::Literal(ScalarValue::Utf8(Some(table)), _) = table else {
            return Err(usage());
        };
        let (layer, name) = table.split_once('.').ok_or_else(usage)?;
        let layer = crate::layout::Layer::ALL
            .into_iter()
            .find(|l| l.name() == layer)
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "as_of: no layer {layer:?} (raw, staging, core, marts, ml, system)"
                ))
            })?;
        if !self.role.reads(layer) {
            return Err(DataFusionError::Plan(format!(
                "as_of: the {} role may not read schema {layer}",
                self.role
            )));
        }
        let as_of = match when {
            Expr::Literal(ScalarValue::Int64(Some(v)), _) if *v >= 0 => crate::store::AsOf::Version(*v as u64),
            Expr::Literal(ScalarValue::Utf8(Some(text)), _) => {
                crate::store::AsOf::Time(parse_time(text).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "as_of: cannot read {text:?} as a time (RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC)"
                    ))
                })?)
            }
            _ => return Err(usage()),
        };
        // Opening a Delta table is asynchronous and planning here is not: open it on a thread of
        // its own, which works whatever runtime the caller plans on.
        let store = self.store.clone();
        let label = format!("{layer}.{name}");
        let name = name.to_string();
        let provider = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                    runtime.block_on(async {
                        let table = store
                            .open(layer, &name, as_of)
                            .await
                            .map_err(|e| DataFusionError::Plan(format!("as_of: {e}")))?;
                        crate::store::Store::provider(&table)
                            .await
                            .map_err(|e| DataFusionError::Execution(e.to_string()))
                    })
                })
                .join()
                .map_err(|_| DataFusionError::Execution("as_of: opening the table panicked".into()))?
        })?;
        crate::access::masked(provider, &label, self.role)
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(Utc.from_utc_datetime(&t));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}
