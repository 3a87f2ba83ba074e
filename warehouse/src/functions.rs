//! SQL functions Tributary adds to every session (queries, refreshes, the servers):
//!
//! - `stable_key(text) -> bigint`: the key a text id keeps across refreshes (products by SKU), the
//!   same hash that keys customers;
//! - `day_number(date) -> bigint`: days since 1970-01-01, so that day differences read
//!   `day_number(b) - day_number(a)` in every SQL dialect the marts must run in (DuckDB defines it
//!   as a macro in the benchmarks);
//! - `as_of('layer.table', version | 'time')`: a table as it was (time travel over the Delta log),
//!   in sessions made by [`crate::engine::Warehouse::context`];
//! - `date_trunc(unit, date)` in place of DataFusion's own, with the same answers: DataFusion casts
//!   every date to a timestamp and truncates that; this one truncates the day number;
//! - `date_part(part, date)` in place of DataFusion's own, with the same answers: the year,
//!   quarter, month and day of a date read off its day number instead of through a calendar
//!   object per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Date32Array, Int32Array, Int64Array, StringArray, TimestampNanosecondArray};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::identity::stable_key;

/// Register every function in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(stable_key_udf());
    ctx.register_udf(day_number_udf());
    ctx.register_udf(ScalarUDF::new_from_impl(DateTruncOfDates::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(DatePartOfDates::default()));
}

/// DataFusion's `date_trunc`, with dates truncated as day numbers. DataFusion accepts a date only
/// by casting it to a nanosecond timestamp, and then splits each timestamp into calendar fields
/// and builds it again: grouping ten million order lines by `date_trunc('month', order_date)` spent
/// more time there than in the sums. A date needs only its day number truncated (and rows in date
/// order repeat the last answer). The answer keeps DataFusion's type, a timestamp at midnight;
/// anything but a date with a constant unit goes to DataFusion's function unchanged.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateTruncOfDates {
    builtin: datafusion::functions::datetime::date_trunc::DateTruncFunc,
    signature: Signature,
}

impl DateTruncOfDates {
    fn new() -> Self {
        let builtin = datafusion::functions::datetime::date_trunc::DateTruncFunc::new();
        // Dates exactly, first, so that no cast to a timestamp is planned; then DataFusion's own.
        let mut accepted: Vec<TypeSignature> = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8]
            .into_iter()
            .map(|unit| TypeSignature::Exact(vec![unit, DataType::Date32]))
            .collect();
        match &builtin.signature().type_signature {
            TypeSignature::OneOf(theirs) => accepted.extend(theirs.iter().cloned()),
            theirs => accepted.push(theirs.clone()),
        }
        let signature = Signature::one_of(accepted, builtin.signature().volatility);
        Self { builtin, signature }
    }
}

/// The units of `date_trunc` that change a date; finer units leave it at midnight.
#[derive(Clone, Copy)]
enum DateUnit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl DateUnit {
    fn parse(unit: &str) -> Option<Self> {
        Some(match unit.to_ascii_lowercase().as_str() {
            "microsecond" | "millisecond" | "second" | "minute" | "hour" | "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "quarter" => Self::Quarter,
            "year" => Self::Year,
            _ => return None,
        })
    }

    /// The first day of the period holding `days` (weeks start on Monday, as DataFusion's do).
    fn truncate(self, days: i64) -> i64 {
        use crate::calendar::{civil_from_days, days_from_civil};
        match self {
            Self::Day => days,
            // 1970-01-01 was a Thursday, three days after a Monday.
            Self::Week => days - (days + 3).rem_euclid(7),
            Self::Month => days - (civil_from_days(days).2 - 1),
            Self::Quarter => {
                let (year, month, _) = civil_from_days(days);
                days_from_civil(year, 1 + 3 * ((month - 1) / 3), 1)
            }
            Self::Year => days_from_civil(civil_from_days(days).0, 1, 1),
        }
    }
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// The truncated dates as nanosecond timestamps; `None` when one falls outside what a nanosecond
/// timestamp holds (DataFusion's own function then answers, as it would have).
fn truncate_dates(unit: DateUnit, dates: &Date32Array) -> Option<TimestampNanosecondArray> {
    let values = answer_per_day(dates, |day| unit.truncate(i64::from(day)).checked_mul(NANOS_PER_DAY))?;
    Some(TimestampNanosecondArray::new(values.into(), dates.nulls().cloned()))
}

/// Each row's answer for its day; `None` when a day has no answer of ours, and the whole array
/// then goes to DataFusion's function. A day's answer is worked out once: for every day from the
/// batch's first to its last when there are no more of those than rows (a batch of orders in any
/// order spans a few years; the answers must then hold for every day between two that have one,
/// as they do for ranges of years and timestamps), else once for each run of one day (order lines
/// come in date order). Null rows are left for the caller's nulls to hide.
fn answer_per_day<T: Copy + Default>(dates: &Date32Array, mut answer: impl FnMut(i32) -> Option<T>) -> Option<Vec<T>> {
    let days = dates.values();
    let nulls = dates.nulls().filter(|n| n.null_count() > 0);
    let (Some(low), Some(high)) = (min(dates), max(dates)) else {
        return Some(vec![T::default(); days.len()]);
    };
    if (i64::from(high) - i64::from(low)) < days.len() as i64 {
        let answers: Vec<T> = (low..=high).map(&mut answer).collect::<Option<_>>()?;
        let of = |day: i32| answers[(day - low) as usize];
        return Some(match nulls {
            None => days.iter().map(|&day| of(day)).collect(),
            Some(nulls) => days
                .iter()
                .zip(nulls.iter())
                .map(|(&day, valid)| if valid { of(day) } else { T::default() })
                .collect(),
        });
    }
    let mut last: Option<(i32, T)> = None;
    let mut values = Vec::with_capacity(days.len());
    for &day in days {
        let value = match last {
            Some((seen, value)) if seen == day => value,
            _ => {
                let value = answer(day)?;
                last = Some((day, value));
                value
            }
        };
        values.push(value);
    }
    Some(values)
}

impl ScalarUDFImpl for DateTruncOfDates {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        match args.arg_fields.get(1) {
            Some(date) if date.data_type() == &DataType::Date32 => Ok(Arc::new(Field::new(
                self.name(),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                date.is_nullable(),
            ))),
            _ => self.builtin.return_field_from_args(args),
        }
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        if args.args.get(1).map(|a| a.data_type()) != Some(DataType::Date32) {
            return self.builtin.invoke_with_args(args);
        }
        let unit = match &args.args[0] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(unit)) | ScalarValue::Utf8View(Some(unit)) | ScalarValue::LargeUtf8(Some(unit)),
            ) => DateUnit::parse(unit),
            _ => None,
        };
        if let Some(unit) = unit {
            match &args.args[1] {
                ColumnarValue::Array(dates) => {
                    let dates = dates
                        .as_any()
                        .downcast_ref::<Date32Array>()
                        .expect("a Date32 value is a Date32Array");
                    if let Some(truncated) = truncate_dates(unit, dates) {
                        return Ok(ColumnarValue::Array(Arc::new(truncated)));
                    }
                }
                ColumnarValue::Scalar(ScalarValue::Date32(None)) => {
                    return Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(None, None)));
                }
                ColumnarValue::Scalar(ScalarValue::Date32(Some(day))) => {
                    if let Some(nanos) = unit.truncate(i64::from(*day)).checked_mul(NANOS_PER_DAY) {
                        return Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
                            Some(nanos),
                            None,
                        )));
                    }
                }
                _ => {}
            }
        }
        // What DataFusion would have done: the date cast to a timestamp, then its function.
        let timestamp = DataType::Timestamp(TimeUnit::Nanosecond, None);
        args.args[1] = args.args[1].cast_to(&timestamp, None)?;
        args.arg_fields[1] = Arc::new(args.arg_fields[1].as_ref().clone().with_data_type(timestamp));
        self.builtin.invoke_with_args(args)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> datafusion::error::Result<SortProperties> {
        self.builtin.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin.documentation()
    }
}

/// DataFusion's `date_part`, with the year, quarter, month or day of a date taken from its day
/// number by [`civil_from_days`](crate::calendar::civil_from_days) (and rows in date order repeat
/// the last answer). DataFusion's builds a calendar date per row through a function pointer:
/// grouping a million orders by `date_part('year', order_date)` spent more time there than in
/// the grouping. Every other part, and anything but a column of dates, goes to DataFusion's
/// function; the answer's type is its own (a 32-bit integer for these parts).
#[derive(Debug, PartialEq, Eq, Hash, Default)]
struct DatePartOfDates {
    builtin: datafusion::functions::datetime::date_part::DatePartFunc,
}

/// The parts of a date this function answers itself.
#[derive(Clone, Copy)]
enum DatePart {
    Year,
    Quarter,
    Month,
    Day,
}

impl DatePart {
    fn parse(part: &str) -> Option<Self> {
        Some(match part.to_ascii_lowercase().as_str() {
            "year" | "years" => Self::Year,
            "quarter" | "qtr" => Self::Quarter,
            "month" | "months" => Self::Month,
            "day" | "days" => Self::Day,
            _ => return None,
        })
    }

    fn of(self, days: i32) -> i32 {
        let (year, month, day) = crate::calendar::civil_from_days(i64::from(days));
        // A Date32 spans years -5.8 million to 5.8 million: every part fits.
        (match self {
            Self::Year => year,
            Self::Quarter => (month + 2) / 3,
            Self::Month => month,
            Self::Day => day,
        }) as i32
    }
}

impl ScalarUDFImpl for DatePartOfDates {
    fn name(&self) -> &str {
        self.builtin.name()
    }

    fn aliases(&self) -> &[String] {
        self.builtin.aliases()
    }

    fn signature(&self) -> &Signature {
        self.builtin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        self.builtin.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        self.builtin.return_field_from_args(args)
    }

    /// DataFusion's rewrite of `date_part('year', d) = 2024` into a range of `d`, which lets a
    /// scan skip files and row groups.
    fn preimage(
        &self,
        args: &[datafusion::logical_expr::Expr],
        literal: &datafusion::logical_expr::Expr,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> datafusion::error::Result<datafusion::logical_expr::preimage::PreimageResult> {
        self.builtin.preimage(args, literal, info)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let part = match &args.args[..] {
            [
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(part)) | ScalarValue::Utf8View(Some(part))),
                ColumnarValue::Array(dates),
            ] if dates.data_type() == &DataType::Date32 => DatePart::parse(part),
            _ => None,
        };
        let Some(part) = part else {
            return self.builtin.invoke_with_args(args);
        };
        let dates = args.args[1].clone().into_array(args.number_rows)?;
        let dates = dates
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("a Date32 value is a Date32Array");
        // DataFusion's answer is null for a day outside chrono's calendar (about 262,000 years
        // either side of year 0, reached only by casting integers to dates): leave those to it.
        let (earliest, latest) = chrono_days();
        let Some(values) = answer_per_day(dates, |day| (earliest..=latest).contains(&day).then(|| part.of(day))) else {
            return self.builtin.invoke_with_args(args);
        };
        Ok(ColumnarValue::Array(Arc::new(Int32Array::new(
            values.into(),
            dates.nulls().cloned(),
        ))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.builtin.documentation()
    }
}

/// The first and last day chrono's calendar holds, as day numbers.
fn chrono_days() -> (i32, i32) {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let days = |date: chrono::NaiveDate| date.signed_duration_since(epoch).num_days() as i32;
    (days(chrono::NaiveDate::MIN), days(chrono::NaiveDate::MAX))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Date32Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// Dates from 1677 to 2262 (what a nanosecond timestamp holds), in and out of order, with
    /// repeats, leap days, the turns of centuries and nulls; then DataFusion's answer and ours.
    fn sessions() -> (SessionContext, SessionContext) {
        let mut days: Vec<Option<i32>> = (-106_000..106_000).step_by(97).map(Some).collect();
        days.extend(
            [
                0, 0, 1, -1, 59, 60, 11_016, 11_017, 10_956, -25_508, -25_509, 19_783, 19_783,
            ]
            .map(Some),
        );
        days.extend([None, Some(20_000), None]);
        days.extend((-3_000..3_000).rev().step_by(13).map(Some));
        let schema = Arc::new(Schema::new(vec![Field::new("day", DataType::Date32, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Date32Array::from(days))]).unwrap();
        // Fewer days from first to last than rows (each day's answer worked out once): three
        // years around 2024-02-29 in no order, some null; and a batch of nulls alone.
        let shuffled: Vec<Option<i32>> = (0..3_000)
            .map(|i| (i % 37 != 5).then_some(19_000 + (i * 7_919) % 1_100))
            .collect();
        let shuffled = RecordBatch::try_new(schema.clone(), vec![Arc::new(Date32Array::from(shuffled))]).unwrap();
        let nulls = RecordBatch::try_new(schema.clone(), vec![Arc::new(Date32Array::from(vec![None, None]))]).unwrap();
        let ours = SessionContext::new();
        super::register(&ours);
        let theirs = SessionContext::new();
        for ctx in [&ours, &theirs] {
            let batches = vec![batch.clone(), shuffled.clone(), nulls.clone()];
            let table = MemTable::try_new(schema.clone(), vec![batches]).unwrap();
            ctx.register_table("dates", Arc::new(table)).unwrap();
        }
        (ours, theirs)
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> (DataType, String) {
        let frame = ctx.sql(sql).await.unwrap();
        let data_type = frame.schema().field(0).data_type().clone();
        let batches = frame.collect().await.unwrap();
        (data_type, pretty_format_batches(&batches).unwrap().to_string())
    }

    #[tokio::test]
    async fn date_trunc_of_dates_answers_as_datafusion_does() {
        let (ours, theirs) = sessions();
        for unit in [
            "year", "quarter", "month", "week", "day", "hour", "second", "MONTH", "Quarter",
        ] {
            let sql = format!("SELECT date_trunc('{unit}', day) AS t FROM dates");
            let expected = answer(&theirs, &sql).await;
            assert_eq!(answer(&ours, &sql).await, expected, "{unit}");
            // A constant date, and the alias.
            let sql = format!("SELECT datetrunc('{unit}', DATE '2024-02-29') AS t");
            assert_eq!(answer(&ours, &sql).await, answer(&theirs, &sql).await, "{unit}");
        }
        // Dates are no longer cast to timestamps before the call.
        let explain = |ctx: SessionContext| async move {
            let plan = ctx
                .sql("EXPLAIN SELECT date_trunc('month', day) FROM dates")
                .await
                .unwrap();
            pretty_format_batches(&plan.collect().await.unwrap())
                .unwrap()
                .to_string()
        };
        let (ours_plan, theirs_plan) = (explain(ours.clone()).await, explain(theirs.clone()).await);
        assert!(theirs_plan.contains("CAST(dates.day"), "{theirs_plan}");
        assert!(!ours_plan.contains("CAST(dates.day"), "{ours_plan}");
        // Timestamps, text and a unit it does not know go to DataFusion's function.
        for sql in [
            "SELECT date_trunc('month', TIMESTAMP '2024-05-17 13:14:15') AS t",
            "SELECT date_trunc('month', '2024-05-17') AS t",
        ] {
            assert_eq!(answer(&ours, sql).await, answer(&theirs, sql).await, "{sql}");
        }
        let wrong = ours.sql("SELECT date_trunc('fortnight', day) FROM dates").await;
        let error = match wrong {
            Ok(frame) => frame.collect().await.unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("Unsupported date_trunc granularity"), "{error}");
        // One value by hand.
        let (_, one) = answer(&ours, "SELECT date_trunc('quarter', DATE '2024-08-31') AS t").await;
        assert!(one.contains("2024-07-01T00:00:00"), "{one}");
    }

    #[tokio::test]
    async fn date_part_of_dates_answers_as_datafusion_does() {
        let (ours, theirs) = sessions();
        for part in [
            "year", "quarter", "month", "day", "YEAR", "Month", "qtr", "days", "week", "doy", "dow", "epoch",
        ] {
            // (EXTRACT is planned with DataFusion's own function whatever the session holds.)
            for sql in [
                format!("SELECT date_part('{part}', day) AS p FROM dates"),
                format!("SELECT datepart('{part}', DATE '2024-02-29') AS p"),
            ] {
                let expected = answer(&theirs, &sql).await;
                assert_eq!(answer(&ours, &sql).await, expected, "{sql}");
            }
        }
        // Values by hand, from a column (a constant goes to DataFusion's function): the last day
        // of a leap year's third quarter, and a date before 1970.
        for (sql, expected) in [
            (
                "SELECT date_part('quarter', d) AS p FROM (VALUES (DATE '2024-09-30')) AS t(d)",
                "| 3 |",
            ),
            (
                "SELECT date_part('day', d) AS p FROM (VALUES (DATE '1969-12-31')) AS t(d)",
                "| 31 |",
            ),
            (
                "SELECT date_part('year', d) AS p FROM (VALUES (DATE '1969-12-31')) AS t(d)",
                "| 1969 |",
            ),
        ] {
            let (data_type, shown) = answer(&ours, sql).await;
            assert_eq!(data_type, DataType::Int32);
            assert!(shown.contains(expected), "{sql}: {shown}");
        }
        // Days outside chrono's calendar are null, as in DataFusion's answer (a column that may
        // hold nulls: DataFusion 55 declares the answer as nullable as its argument).
        let sql = "SELECT date_part('year', CAST(CAST(d AS INT) AS DATE)) AS p FROM (VALUES (100000000), (0), (NULL)) AS t(d)";
        assert_eq!(answer(&ours, sql).await, answer(&theirs, sql).await);
        // The same at the calendar's end, in a batch spanning fewer days than rows (and a null
        // again, for DataFusion's declared nullability).
        let (_, latest) = super::chrono_days();
        let sql = format!(
            "SELECT date_part('month', CAST(CAST(d AS INT) AS DATE)) AS p FROM (VALUES ({}), ({latest}), ({}), (NULL)) AS t(d)",
            latest - 1,
            latest + 1
        );
        let shown = answer(&ours, &sql).await;
        assert_eq!(shown, answer(&theirs, &sql).await);
        assert!(shown.1.contains("| 12 |"), "{}", shown.1);
        // A comparison with a year still becomes a range of dates.
        let plan = answer(
            &ours,
            "EXPLAIN SELECT day FROM dates WHERE date_part('year', day) = 2024",
        )
        .await;
        assert!(plan.1.contains("2025-01-01"), "{}", plan.1);
    }
}
