//! The model jobs, one function each, so the CLI and the scheduler run the same code: each trains
//! or fits on the warehouse, stores its model artefact, writes its `ml` table as one new Delta
//! version (readers see the old or the new table, never half), and records the run in
//! `system.job_run`. A job is idempotent per run date: a second run on the same date finds its
//! table already written for that date and does nothing (unless forced).

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tributary_warehouse::engine::Warehouse;
use tributary_warehouse::layout::Layer;
use tributary_warehouse::store::Append;

use crate::ModelError;
use crate::churn::{ChurnOptions, collect, order_span, score_on_warehouse};
use crate::demand::DemandOptions;
use crate::design::keys;
use crate::lifetime::{BgNbd, GammaGamma, Summary, lifetime_value};
use crate::registry;

/// Commit metadata key holding the run date a job wrote its table for.
const RUN_DATE_KEY: &str = "tributary.job.run_date";

/// How a job run ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobOutcome {
    /// The job's name.
    pub job: String,
    /// The run date.
    pub run_date: NaiveDate,
    /// `succeeded`, `skipped` (already ran for this date) or `not_used` (the model did not beat
    /// its baseline, so its table was left as it was).
    pub status: String,
    /// The table written.
    pub table: String,
    /// Its new version.
    pub table_version: Option<u64>,
    /// Rows written.
    pub rows: u64,
    /// The model artefact's version.
    pub model_version: Option<u64>,
    /// What the job found: metrics, choices, parameters.
    pub report: serde_json::Value,
}

/// Day number since 1970-01-01, as Arrow's Date32 holds it.
fn days(date: NaiveDate) -> i32 {
    crate::churn::day_number(date) as i32
}

fn metadata(job: &str, run_date: NaiveDate, model_version: Option<u64>) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("tributary.job".into(), job.into());
    m.insert(RUN_DATE_KEY.into(), run_date.to_string().into());
    if let Some(v) = model_version {
        m.insert("tributary.model_version".into(), v.into());
    }
    m
}

/// Write a job's `ml.<table>` as one new version stamped with the run date and model version,
/// and report the run as succeeded.
#[allow(clippy::too_many_arguments)]
async fn write_ml_table(
    warehouse: &Warehouse,
    job: &str,
    table: &str,
    batch: RecordBatch,
    run_date: NaiveDate,
    model_version: u64,
    rows: u64,
    report: serde_json::Value,
) -> Result<JobOutcome, ModelError> {
    let table_version = warehouse
        .store()
        .replace(
            Layer::Ml,
            table,
            vec![batch],
            metadata(job, run_date, Some(model_version)),
        )
        .await?;
    Ok(JobOutcome {
        job: job.into(),
        run_date,
        status: "succeeded".into(),
        table: format!("ml.{table}"),
        table_version,
        rows,
        model_version: Some(model_version),
        report,
    })
}

/// Whether `ml.<table>` was already written for `run_date`.
async fn already_ran(warehouse: &Warehouse, table: &str, run_date: NaiveDate) -> Result<bool, ModelError> {
    let commit = warehouse.store().latest_commit(Layer::Ml, table).await?;
    Ok(commit
        .and_then(|c| c.get(RUN_DATE_KEY).cloned())
        .is_some_and(|d| d == run_date.to_string()))
}

/// Append one row to `system.job_run`.
pub async fn record_run(
    warehouse: &Warehouse,
    outcome: Result<&JobOutcome, (&str, NaiveDate, &str)>,
    started: chrono::DateTime<Utc>,
) -> Result<(), ModelError> {
    let finished = Utc::now();
    let (job, run_date, status, table, version, rows, message) = match outcome {
        Ok(o) => (
            o.job.as_str(),
            o.run_date,
            o.status.as_str(),
            Some(o.table.clone()),
            o.table_version.map(|v| v as i64),
            Some(o.rows as i64),
            None,
        ),
        Err((job, run_date, message)) => (job, run_date, "failed", None, None, None, Some(message.to_string())),
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run_date", DataType::Date32, false),
        Field::new(
            "started_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "finished_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("output_table", DataType::Utf8, true),
        Field::new("table_version", DataType::Int64, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("message", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![job])),
        Arc::new(Date32Array::from(vec![days(run_date)])),
        Arc::new(TimestampMicrosecondArray::from(vec![started.timestamp_micros()]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![finished.timestamp_micros()]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![status])),
        Arc::new(StringArray::from(vec![table])),
        Arc::new(Int64Array::from(vec![version])),
        Arc::new(Int64Array::from(vec![rows])),
        Arc::new(StringArray::from(vec![message])),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| ModelError::Query(e.to_string()))?;
    let marker = format!("job_run-{job}-{}", started.timestamp_nanos_opt().unwrap_or_default());
    warehouse
        .store()
        .append(
            Layer::System,
            "job_run",
            Append {
                batches: vec![batch],
                partition_by: &[],
                marker: &marker,
                metadata: serde_json::Map::new(),
            },
        )
        .await?;
    Ok(())
}

/// Run `body` as job `job` for `run_date`, recording the run (failures too).
async fn recorded<F>(warehouse: &Warehouse, job: &str, run_date: NaiveDate, body: F) -> Result<JobOutcome, ModelError>
where
    F: std::future::Future<Output = Result<JobOutcome, ModelError>>,
{
    let started = Utc::now();
    let result = body.await;
    match &result {
        Ok(outcome) => record_run(warehouse, Ok(outcome), started).await?,
        Err(e) => record_run(warehouse, Err((job, run_date, &e.to_string())), started).await?,
    }
    result
}

fn skipped(job: &str, table: &str, run_date: NaiveDate) -> JobOutcome {
    JobOutcome {
        job: job.into(),
        run_date,
        status: "skipped".into(),
        table: format!("ml.{table}"),
        table_version: None,
        rows: 0,
        model_version: None,
        report: serde_json::json!({"reason": format!("ml.{table} was already written for {run_date}")}),
    }
}

/// The last day of data: the configured `as_of`, or the last order date.
async fn data_as_of(warehouse: &Warehouse, configured: Option<NaiveDate>) -> Result<NaiveDate, ModelError> {
    match configured {
        Some(d) => Ok(d),
        None => Ok(order_span(warehouse).await?.1),
    }
}

/// Train the churn model, store it, and (if it beats its baseline) score today's customers into
/// `ml.churn_score`.
pub async fn churn(
    warehouse: &Warehouse,
    options: &ChurnOptions,
    run_date: NaiveDate,
    force: bool,
) -> Result<JobOutcome, ModelError> {
    churn_exporting(warehouse, options, run_date, force, None).await
}

/// [`churn`], also writing each split's feature rows as Parquet into `export`.
pub async fn churn_exporting(
    warehouse: &Warehouse,
    options: &ChurnOptions,
    run_date: NaiveDate,
    force: bool,
    export: Option<&std::path::Path>,
) -> Result<JobOutcome, ModelError> {
    const JOB: &str = "churn";
    if !force && already_ran(warehouse, "churn_score", run_date).await? {
        return Ok(skipped(JOB, "churn_score", run_date));
    }
    recorded(warehouse, JOB, run_date, async {
        let model = crate::churn::train_and_export(warehouse, options, export).await?;
        let version = registry::save(warehouse.store().dir(), JOB, &model.report, &model)?;
        let report = serde_json::to_value(&model.report).map_err(|e| ModelError::Query(e.to_string()))?;
        if !model.report.beats_baseline {
            return Ok(JobOutcome {
                job: JOB.into(),
                run_date,
                status: "not_used".into(),
                table: "ml.churn_score".into(),
                table_version: None,
                rows: 0,
                model_version: Some(version),
                report,
            });
        }
        let as_of = data_as_of(warehouse, options.as_of).await?;
        let scores = score_on_warehouse(warehouse, &model, as_of, version).await?;
        let rows = scores.num_rows() as u64;
        write_ml_table(warehouse, JOB, "churn_score", scores, run_date, version, rows, report).await
    })
    .await
}

/// Choices for the lifetime-value models (`[lifetime]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifetimeOptions {
    /// Calibration cut-off; by default the last order date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// Time unit of the model: `day`, `week` or `month`.
    pub unit: String,
    /// Months of lifetime value.
    pub months: u32,
    /// Discount rate per month.
    pub monthly_discount_rate: f64,
}

impl Default for LifetimeOptions {
    fn default() -> Self {
        Self {
            as_of: None,
            unit: "week".into(),
            months: 12,
            monthly_discount_rate: 0.01,
        }
    }
}

/// Days in one unit.
fn unit_days(unit: &str) -> Result<f64, ModelError> {
    match unit {
        "day" => Ok(1.0),
        "week" => Ok(7.0),
        "month" => Ok(365.25 / 12.0),
        other => Err(ModelError::Forecast(format!(
            "lifetime.unit is {other:?}; use day, week or month"
        ))),
    }
}

/// Fit BG/NBD and Gamma-Gamma at the cut-off and write P(alive), expected purchases and
/// discounted lifetime value per customer to `ml.customer_lifetime`.
pub async fn lifetime(
    warehouse: &Warehouse,
    options: &LifetimeOptions,
    run_date: NaiveDate,
    force: bool,
) -> Result<JobOutcome, ModelError> {
    const JOB: &str = "lifetime";
    if !force && already_ran(warehouse, "customer_lifetime", run_date).await? {
        return Ok(skipped(JOB, "customer_lifetime", run_date));
    }
    recorded(warehouse, JOB, run_date, async {
        let unit = unit_days(&options.unit)?;
        let as_of = data_as_of(warehouse, options.as_of).await?;
        let cutoff = days(as_of);
        let sql = format!(
            "WITH purchase_days AS ( \
                SELECT customer_key, day_number(order_date) AS day, SUM(CAST(net_total AS DOUBLE)) AS value \
                FROM core.sales_order \
                WHERE customer_key IS NOT NULL AND status <> 'cancelled' AND day_number(order_date) <= {cutoff} \
                GROUP BY customer_key, day_number(order_date)), \
             firsts AS (SELECT customer_key, MIN(day) AS first_day FROM purchase_days GROUP BY customer_key) \
             SELECT d.customer_key, CAST(COUNT(*) - 1 AS DOUBLE) AS frequency, \
                    CAST(MAX(d.day) - f.first_day AS DOUBLE) AS recency_days, \
                    CAST({cutoff} - f.first_day AS DOUBLE) AS age_days, \
                    COALESCE(SUM(CASE WHEN d.day > f.first_day THEN d.value END) / NULLIF(COUNT(*) - 1, 0), 0) AS monetary, \
                    (SELECT CAST(SUM(net_amount - cost_amount) AS DOUBLE) / NULLIF(CAST(SUM(net_amount) AS DOUBLE), 0) \
                     FROM core.order_line WHERE status <> 'cancelled') AS margin_rate \
             FROM purchase_days d JOIN firsts f ON f.customer_key = d.customer_key \
             GROUP BY d.customer_key, f.first_day ORDER BY d.customer_key"
        );
        let batches = collect(warehouse, &sql).await?;
        let number = |column: &str| -> Result<Vec<f64>, ModelError> {
            Ok(keys(&batches, column)?.iter().map(|v| v.parse().unwrap_or(0.0)).collect())
        };
        let customers = keys(&batches, "customer_key")?;
        let (frequency, recency, age, monetary) = (
            number("frequency")?,
            number("recency_days")?,
            number("age_days")?,
            number("monetary")?,
        );
        let margin = number("margin_rate")?.first().copied().unwrap_or(1.0);
        let summaries: Vec<Summary> = (0..customers.len())
            .map(|i| Summary {
                frequency: frequency[i],
                recency: recency[i] / unit,
                age: age[i] / unit,
                monetary: monetary[i],
            })
            .collect();
        let purchases = BgNbd::fit(&summaries)?;
        let spend = GammaGamma::fit(&summaries)?;
        let month = 365.25 / 12.0 / unit;
        let report = serde_json::json!({
            "as_of": as_of,
            "unit": options.unit,
            "customers": summaries.len(),
            "bg_nbd": purchases,
            "gamma_gamma": spend,
            "margin_rate": margin,
            "months": options.months,
            "monthly_discount_rate": options.monthly_discount_rate,
        });
        let version = registry::save(warehouse.store().dir(), JOB, &report, &(purchases, spend))?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_key", DataType::Int64, false),
            Field::new("as_of", DataType::Date32, false),
            Field::new("frequency", DataType::Float64, false),
            Field::new("recency", DataType::Float64, false),
            Field::new("age", DataType::Float64, false),
            Field::new("monetary_value", DataType::Float64, false),
            Field::new("p_alive", DataType::Float64, false),
            Field::new("expected_purchases_90d", DataType::Float64, false),
            Field::new("expected_order_value", DataType::Float64, false),
            Field::new("clv", DataType::Float64, false),
            Field::new("time_unit", DataType::Utf8, false),
            Field::new("model_version", DataType::Int64, false),
        ]));
        let n = summaries.len();
        let column = |f: &dyn Fn(&Summary) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from(summaries.iter().map(f).collect::<Vec<_>>()))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(customers.iter().map(|k| k.parse().unwrap_or(0)).collect::<Vec<i64>>())),
            Arc::new(Date32Array::from(vec![cutoff; n])),
            column(&|s| s.frequency),
            column(&|s| s.recency),
            column(&|s| s.age),
            column(&|s| s.monetary),
            column(&|s| purchases.p_alive(s)),
            column(&|s| purchases.expected_purchases(s, 90.0 / unit)),
            column(&|s| spend.expected_spend(s)),
            column(&|s| {
                lifetime_value(&purchases, &spend, s, margin, options.months, month, options.monthly_discount_rate)
            }),
            Arc::new(StringArray::from(vec![options.unit.as_str(); n])),
            Arc::new(Int64Array::from(vec![version as i64; n])),
        ];
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| ModelError::Query(e.to_string()))?;
        write_ml_table(warehouse, JOB, "customer_lifetime", batch, run_date, version, n as u64, report).await
    })
    .await
}

/// Forecast rows: the keys of each series, then the horizon's steps.
struct ForecastRows {
    keys: Vec<(String, Vec<Option<String>>)>,
    period_start: Vec<i32>,
    step: Vec<i64>,
    method: Vec<String>,
    values: [Vec<f64>; 5],
}

impl ForecastRows {
    fn new(key_names: &[&str]) -> Self {
        Self {
            keys: key_names.iter().map(|k| (k.to_string(), Vec::new())).collect(),
            period_start: Vec::new(),
            step: Vec::new(),
            method: Vec::new(),
            values: Default::default(),
        }
    }

    fn push(&mut self, keys: &[Option<String>], periods: &[NaiveDate], forecast: &crate::forecast::Forecast) {
        for (h, start) in periods.iter().enumerate() {
            for (column, value) in self.keys.iter_mut().zip(keys) {
                column.1.push(value.clone());
            }
            self.period_start.push(days(*start));
            self.step.push(h as i64 + 1);
            self.method.push(forecast.method.clone());
            let parts = [
                &forecast.mean,
                &forecast.lower_80,
                &forecast.upper_80,
                &forecast.lower_95,
                &forecast.upper_95,
            ];
            for (out, part) in self.values.iter_mut().zip(parts) {
                out.push(part[h]);
            }
        }
    }

    fn batch(self, period: &str, run_date: NaiveDate) -> Result<RecordBatch, ModelError> {
        let mut fields: Vec<Field> = self
            .keys
            .iter()
            .map(|(name, _)| {
                let kind = if name.ends_with("_key") {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                Field::new(name, kind, true)
            })
            .collect();
        let mut columns: Vec<ArrayRef> = self
            .keys
            .into_iter()
            .map(|(name, values)| -> ArrayRef {
                if name.ends_with("_key") {
                    Arc::new(Int64Array::from(
                        values
                            .iter()
                            .map(|v| v.as_ref().and_then(|v| v.parse().ok()))
                            .collect::<Vec<Option<i64>>>(),
                    ))
                } else {
                    Arc::new(StringArray::from(values))
                }
            })
            .collect();
        let rows = self.step.len();
        fields.extend([
            Field::new(period, DataType::Date32, false),
            Field::new("steps_ahead", DataType::Int64, false),
            Field::new("method", DataType::Utf8, false),
            Field::new("forecast", DataType::Float64, false),
            Field::new("lower_80", DataType::Float64, false),
            Field::new("upper_80", DataType::Float64, false),
            Field::new("lower_95", DataType::Float64, false),
            Field::new("upper_95", DataType::Float64, false),
            Field::new("run_date", DataType::Date32, false),
        ]);
        columns.push(Arc::new(Date32Array::from(self.period_start)));
        columns.push(Arc::new(Int64Array::from(self.step)));
        columns.push(Arc::new(StringArray::from(self.method)));
        for values in self.values {
            columns.push(Arc::new(Float64Array::from(values)));
        }
        columns.push(Arc::new(Date32Array::from(vec![days(run_date); rows])));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| ModelError::Query(e.to_string()))
    }
}

/// Backtest the demand methods, store the report, and write the 12-week forecast per product to
/// `ml.demand_forecast`.
pub async fn demand_forecast(
    warehouse: &Warehouse,
    options: &DemandOptions,
    run_date: NaiveDate,
    force: bool,
) -> Result<JobOutcome, ModelError> {
    demand_forecast_exporting(warehouse, options, run_date, force, None).await
}

/// [`demand_forecast`], also writing the backtested series as CSV to `export`.
pub async fn demand_forecast_exporting(
    warehouse: &Warehouse,
    options: &DemandOptions,
    run_date: NaiveDate,
    force: bool,
    export: Option<&std::path::Path>,
) -> Result<JobOutcome, ModelError> {
    const JOB: &str = "demand_forecast";
    if !force && already_ran(warehouse, "demand_forecast", run_date).await? {
        return Ok(skipped(JOB, "demand_forecast", run_date));
    }
    recorded(warehouse, JOB, run_date, async {
        let as_of = data_as_of(warehouse, options.as_of).await?;
        let history = crate::demand::history(warehouse, as_of, options.horizon_weeks).await?;
        if let Some(path) = export {
            std::fs::write(path, crate::demand::backtest_series_csv(&history, options)).map_err(|e| {
                ModelError::Artefact {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }
            })?;
        }
        let run = crate::demand::run(&history, options)?;
        let report = serde_json::to_value(&run).map_err(|e| ModelError::Query(e.to_string()))?;
        let version = registry::save(warehouse.store().dir(), "demand", &report, &serde_json::Value::Null)?;
        let weeks: Vec<NaiveDate> = (0..options.horizon_weeks)
            .map(|h| run.first_forecast_week + chrono::Days::new(7 * h as u64))
            .collect();
        let mut rows = ForecastRows::new(&["product_key", "sku", "category", "region"]);
        for (key, sku, category, region, forecast) in &run.forecasts {
            rows.push(
                &[
                    Some(key.to_string()),
                    Some(sku.clone()),
                    Some(category.clone()),
                    region.clone(),
                ],
                &weeks,
                forecast,
            );
        }
        let batch = rows.batch("week_start", run_date)?;
        let n = batch.num_rows() as u64;
        write_ml_table(warehouse, JOB, "demand_forecast", batch, run_date, version, n, report).await
    })
    .await
}

/// Forecast monthly revenue by region, channel and category for the next `months`, reconciled,
/// into `ml.sales_forecast`.
pub async fn sales_forecast(
    warehouse: &Warehouse,
    as_of: Option<NaiveDate>,
    months: usize,
    run_date: NaiveDate,
    force: bool,
) -> Result<JobOutcome, ModelError> {
    const JOB: &str = "sales_forecast";
    if !force && already_ran(warehouse, "sales_forecast", run_date).await? {
        return Ok(skipped(JOB, "sales_forecast", run_date));
    }
    recorded(warehouse, JOB, run_date, async {
        let as_of = data_as_of(warehouse, as_of).await?;
        let run = crate::sales::run(warehouse, as_of, months, 3).await?;
        let report = serde_json::json!({
            "as_of": as_of,
            "first_month": run.first_month,
            "history_months": run.history_months,
            "backtests": run.backtests,
            "chosen": run.chosen,
            "series": run.series.len(),
        });
        let version = registry::save(warehouse.store().dir(), "sales", &report, &serde_json::Value::Null)?;
        let periods: Vec<NaiveDate> = (0..months)
            .map(|h| run.first_month + chrono::Months::new(h as u32))
            .collect();
        let mut rows = ForecastRows::new(&["level", "region", "channel", "category"]);
        for s in &run.series {
            rows.push(
                &[
                    Some(s.level.clone()),
                    s.region.clone(),
                    s.channel.clone(),
                    s.category.clone(),
                ],
                &periods,
                &s.forecast,
            );
        }
        let batch = rows.batch("month_start", run_date)?;
        let n = batch.num_rows() as u64;
        write_ml_table(warehouse, JOB, "sales_forecast", batch, run_date, version, n, report).await
    })
    .await
}
