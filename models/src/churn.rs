//! Churn: who is about to stop buying. A customer counts as churned at a cut-off when they bought
//! in the year before it and then not at all in the `horizon` days after it (90 by default).
//!
//! On the warehouse, features come from `core` as of each cut-off (`models/sql/churn_features.sql`:
//! only rows dated on or before the cut-off), and the splits follow time, never rows: the model
//! trains on the two cut-offs before the validation cut-off, is chosen on the validation cut-off,
//! and is judged on the test cut-off, whose label window ends at the last day of data. Logistic
//! regression, a random forest and gradient-boosted trees compete on validation ROC AUC, and the
//! winner is used only if it beats the baseline of ranking by days since the last order.
//!
//! On any table (`tributary train churn --sql`), the same machinery trains on one row per customer
//! with a label column.

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tributary_warehouse::engine::Warehouse;

use crate::ModelError;
use crate::boosting::BoostingShape;
use crate::classifier::{Algorithm, Classifier, ForestShape, fit_boosting, fit_forest, fit_logistic};
use crate::design::{Design, keys, labels};
use crate::metrics::{brier, pr_auc, roc_auc, top_decile_lift};

/// The feature query, with `{cutoff}`, `{horizon}` and `{label_known}` to fill in.
pub const FEATURES_SQL: &str = include_str!("../sql/churn_features.sql");

/// Choices for churn training (`[churn]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnOptions {
    /// Days without an order after a cut-off that make a customer churned.
    pub horizon_days: u32,
    /// The last day of data; by default the last order date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// Trees in the random forest.
    pub trees: usize,
    /// Deepest a tree may grow.
    pub max_depth: usize,
    /// Rows each tree draws, as a share of the training rows.
    pub tree_row_share: f64,
    /// Features each tree sees, as a share of all.
    pub tree_feature_share: f64,
    /// L2 penalty of the logistic regression (linfa's alpha; scikit-learn's C = 1 is 1).
    pub l2: f64,
    /// Most boosting rounds of the gradient-boosted trees (fewer when the loss stops improving).
    pub boosting_rounds: usize,
    /// Learning rate of the gradient-boosted trees.
    pub learning_rate: f64,
    /// Most leaves of a boosted tree.
    pub max_leaves: usize,
    /// Seed of the forest's sampling and the boosting's bins and hold-out, so a run can be
    /// repeated exactly.
    pub seed: u64,
}

impl Default for ChurnOptions {
    fn default() -> Self {
        Self {
            horizon_days: 90,
            as_of: None,
            trees: 100,
            max_depth: 10,
            tree_row_share: 0.5,
            tree_feature_share: 0.6,
            l2: 1.0,
            boosting_rounds: 100,
            learning_rate: 0.1,
            max_leaves: 31,
            seed: 7,
        }
    }
}

/// How well scores rank and calibrate on one set of rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Rows scored.
    pub rows: usize,
    /// Rows with the label `yes`.
    pub positives: usize,
    /// Area under the ROC curve.
    pub roc_auc: Option<f64>,
    /// Average precision.
    pub pr_auc: Option<f64>,
    /// Brier score.
    pub brier: f64,
    /// Positive rate in the top decile over the overall rate.
    pub top_decile_lift: Option<f64>,
}

impl Evaluation {
    /// Evaluate `probabilities` against `labels`.
    pub fn of(labels: &[bool], probabilities: &[f64]) -> Self {
        Self {
            rows: labels.len(),
            positives: labels.iter().filter(|&&l| l).count(),
            roc_auc: roc_auc(labels, probabilities),
            pr_auc: pr_auc(labels, probabilities),
            brier: brier(labels, probabilities),
            top_decile_lift: top_decile_lift(labels, probabilities),
        }
    }
}

/// One candidate's showing on the validation rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// Its validation scores.
    pub validation: Evaluation,
    /// Its test scores (reported for comparison with other libraries; the choice is made on
    /// validation alone).
    pub test: Evaluation,
}

/// Where the rows of each split came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// Training cut-offs, or a description of the training rows.
    pub train: Vec<String>,
    /// Validation cut-off or rows.
    pub validation: String,
    /// Test cut-off or rows.
    pub test: String,
    /// Days after a cut-off that decide the label (when labels come from the warehouse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<u32>,
}

/// What training found: every candidate, the choice, the baseline and the test figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChurnReport {
    /// The rows behind each split.
    pub window: Window,
    /// Feature columns (after encoding).
    pub features: Vec<String>,
    /// Each candidate on validation.
    pub candidates: Vec<Candidate>,
    /// The candidate with the best validation ROC AUC.
    pub chosen: Algorithm,
    /// The baseline and its validation ROC AUC.
    pub baseline: String,
    /// Baseline validation ROC AUC.
    pub baseline_validation_auc: Option<f64>,
    /// Whether the chosen model beats the baseline on validation (it is used only if so).
    pub beats_baseline: bool,
    /// The chosen model on the test rows.
    pub test: Evaluation,
    /// The baseline on the test rows.
    pub baseline_test: Evaluation,
}

/// A trained churn model: its encoding, its classifier and the report that earned it its place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnModel {
    /// How rows become features.
    pub design: Design,
    /// The fitted classifier.
    pub classifier: Classifier,
    /// Typical feature values (medians, commonest levels), for the reasons of tree models.
    pub typical: Vec<f64>,
    /// Key column of the rows.
    pub key: String,
    /// Label column of the rows.
    pub label: String,
    /// The training report.
    pub report: ChurnReport,
}

/// Rows for one split: features and labels.
pub struct Rows {
    /// The rows as queried.
    pub batches: Vec<RecordBatch>,
    /// Their labels.
    pub labels: Vec<bool>,
}

impl Rows {
    /// Rows from a query result, reading `label`.
    pub fn new(batches: Vec<RecordBatch>, label: &str) -> Result<Self, ModelError> {
        let labels = labels(&batches, label)?;
        Ok(Self { batches, labels })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// The typical row: medians for numbers, the commonest level for text.
fn typical_row(design: &Design) -> Vec<f64> {
    let mut row = Vec::new();
    for encoding in &design.encodings {
        match encoding {
            crate::design::Encoding::Numeric {
                fill,
                missing_indicator,
                ..
            } => {
                row.push(*fill);
                if *missing_indicator {
                    row.push(0.0);
                }
            }
            crate::design::Encoding::Category { levels, .. } => {
                row.extend((0..=levels.len()).map(|i| if i == 0 && !levels.is_empty() { 1.0 } else { 0.0 }));
                if levels.is_empty() {
                    *row.last_mut().expect("pushed one") = 1.0;
                }
            }
        }
    }
    row
}

/// The rows of the three splits.
pub struct Splits {
    /// Rows the candidates learn from.
    pub train: Rows,
    /// Rows that choose between them.
    pub validation: Rows,
    /// Rows that judge the choice.
    pub test: Rows,
}

/// Train every candidate on the training rows, choose on the validation rows, judge on the test
/// rows. `baseline` names a numeric column whose value alone ranks churners (higher = more
/// likely), or `None` for the constant model (ROC AUC 0.5).
pub fn train(
    splits: &Splits,
    key: &str,
    label: &str,
    baseline: Option<&str>,
    window: Window,
    options: &ChurnOptions,
) -> Result<ChurnModel, ModelError> {
    let Splits {
        train,
        validation,
        test,
    } = splits;
    if train.len() == 0 || validation.len() == 0 || test.len() == 0 {
        return Err(ModelError::TooFewRows {
            train: train.len(),
            validation: validation.len(),
            test: test.len(),
        });
    }
    let design = Design::learn(&train.batches, &[key, label])?;
    let x_train = design.matrix(&train.batches)?;
    let x_validation = design.matrix(&validation.batches)?;
    let x_test = design.matrix(&test.batches)?;
    tracing::info!(
        rows = train.len(),
        features = x_train.ncols(),
        "training churn candidates"
    );

    let candidates = [
        fit_logistic(&x_train, &train.labels, options.l2)?,
        fit_forest(
            &x_train,
            &train.labels,
            ForestShape {
                trees: options.trees,
                max_depth: options.max_depth,
                row_share: options.tree_row_share,
                feature_share: options.tree_feature_share,
                seed: options.seed,
            },
        )?,
        fit_boosting(
            &x_train,
            &train.labels,
            &BoostingShape {
                rounds: options.boosting_rounds,
                learning_rate: options.learning_rate,
                max_leaves: options.max_leaves,
                seed: options.seed,
                ..BoostingShape::default()
            },
        )?,
    ];
    let mut reports = Vec::new();
    for candidate in &candidates {
        reports.push(Candidate {
            algorithm: candidate.algorithm(),
            validation: Evaluation::of(&validation.labels, &candidate.probabilities(&x_validation)),
            test: Evaluation::of(&test.labels, &candidate.probabilities(&x_test)),
        });
    }
    let best = (0..candidates.len())
        .max_by(|&a, &b| {
            let auc = |i: usize| reports[i].validation.roc_auc.unwrap_or(0.0);
            auc(a).total_cmp(&auc(b)).then(b.cmp(&a))
        })
        .expect("three candidates");
    let classifier = candidates.into_iter().nth(best).expect("in range");

    let baseline_scores = |rows: &Rows| -> Result<Vec<f64>, ModelError> {
        match baseline {
            Some(column) => {
                let design = Design::learn(&rows.batches, &[])?;
                let position = design
                    .feature_names()
                    .iter()
                    .position(|n| n == column)
                    .ok_or_else(|| crate::design::DesignError::MissingColumn(column.to_string()))?;
                Ok(design.matrix(&rows.batches)?.column(position).to_vec())
            }
            None => Ok(vec![0.5; rows.len()]),
        }
    };
    let baseline_validation = Evaluation::of(&validation.labels, &baseline_scores(validation)?);
    let baseline_test = Evaluation::of(&test.labels, &baseline_scores(test)?);
    let chosen_auc = reports[best].validation.roc_auc.unwrap_or(0.0);
    let baseline_auc = baseline_validation.roc_auc.unwrap_or(0.5);
    let report = ChurnReport {
        window,
        features: design.feature_names(),
        chosen: classifier.algorithm(),
        candidates: reports,
        baseline: baseline.map_or("constant rate".to_string(), |c| format!("rank by {c}")),
        baseline_validation_auc: baseline_validation.roc_auc,
        beats_baseline: chosen_auc > baseline_auc,
        test: Evaluation::of(&test.labels, &classifier.probabilities(&x_test)),
        baseline_test,
    };
    Ok(ChurnModel {
        typical: typical_row(&design),
        design,
        classifier,
        key: key.to_string(),
        label: label.to_string(),
        report,
    })
}

/// One customer's score with the three features that push it up most.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Score {
    /// The row's key.
    pub key: String,
    /// P(churn).
    pub probability: f64,
    /// Up to three `feature = value` reasons, strongest first.
    pub reasons: Vec<String>,
}

impl ChurnModel {
    /// Score rows holding every feature column (the label may be absent).
    pub fn score(&self, batches: &[RecordBatch]) -> Result<Vec<Score>, ModelError> {
        let x = self.design.matrix(batches)?;
        let keys = keys(batches, &self.key)?;
        let probabilities = self.classifier.probabilities(&x);
        let (names, contributions) = self
            .classifier
            .contributions(&x, &self.typical, &self.design.feature_sources());
        let raw = raw_values(batches, &names);
        Ok(keys
            .into_iter()
            .zip(probabilities)
            .enumerate()
            .map(|(row, (key, probability))| Score {
                key,
                probability,
                reasons: top_reasons(&contributions, row, &names, &raw),
            })
            .collect())
    }
}

/// The source columns' values as text, for reasons.
fn raw_values(batches: &[RecordBatch], names: &[String]) -> Vec<Vec<String>> {
    names
        .iter()
        .map(|name| {
            keys(batches, name)
                .unwrap_or_default()
                .into_iter()
                .map(|v| match v.parse::<f64>() {
                    Ok(n) if n.fract() != 0.0 => format!("{n:.2}"),
                    _ if v.is_empty() => "missing".to_string(),
                    _ => v,
                })
                .collect()
        })
        .collect()
}

fn top_reasons(contributions: &Array2<f64>, row: usize, names: &[String], raw: &[Vec<String>]) -> Vec<String> {
    let mut pushing: Vec<(usize, f64)> = contributions
        .row(row)
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, c)| *c > 0.0)
        .collect();
    pushing.sort_by(|a, b| b.1.total_cmp(&a.1));
    pushing
        .into_iter()
        .take(3)
        .map(|(k, _)| format!("{} = {}", names[k], raw[k].get(row).map_or("?", String::as_str)))
        .collect()
}

/// The rows of `batches` whose position (from 0, across batches) passes `keep`: deterministic
/// splits of a customer-level table, where each customer is one row.
pub fn rows_where(batches: &[RecordBatch], keep: impl Fn(usize) -> bool) -> Result<Vec<RecordBatch>, ModelError> {
    use datafusion::arrow::array::BooleanArray;
    use datafusion::arrow::compute::{concat_batches, filter_record_batch};
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let all = concat_batches(&first.schema(), batches).map_err(|e| ModelError::Query(e.to_string()))?;
    let mask = BooleanArray::from((0..all.num_rows()).map(keep).collect::<Vec<_>>());
    let kept = filter_record_batch(&all, &mask).map_err(|e| ModelError::Query(e.to_string()))?;
    Ok(vec![kept])
}

/// Day number since 1970-01-01, as the warehouse's `day_number` gives it.
pub(crate) fn day_number(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce() - 719_163)
}

/// The feature query at `cutoff`.
pub fn features_sql(cutoff: NaiveDate, horizon_days: u32, label_known: bool) -> String {
    FEATURES_SQL
        .replace("{cutoff}", &day_number(cutoff).to_string())
        .replace("{horizon}", &horizon_days.to_string())
        .replace("{label_known}", if label_known { "true" } else { "false" })
}

/// Run a query on the warehouse and collect it (jobs are not subject to the result-row cap).
pub async fn collect(warehouse: &Warehouse, sql: &str) -> Result<Vec<RecordBatch>, ModelError> {
    let ctx = warehouse.context().await?;
    let frame = ctx.sql(sql).await.map_err(|e| ModelError::Query(e.to_string()))?;
    frame.collect().await.map_err(|e| ModelError::Query(e.to_string()))
}

/// The first and last order dates in `core.sales_order`.
pub async fn order_span(warehouse: &Warehouse) -> Result<(NaiveDate, NaiveDate), ModelError> {
    let batches = collect(
        warehouse,
        "SELECT CAST(MIN(order_date) AS VARCHAR) AS first_order, CAST(MAX(order_date) AS VARCHAR) AS last_order \
         FROM core.sales_order WHERE status <> 'cancelled'",
    )
    .await?;
    let parse = |column: &str| {
        keys(&batches, column)
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
    };
    let (first, last) = (parse("first_order"), parse("last_order"));
    match (first, last) {
        (Some(first), Some(last)) => Ok((first, last)),
        _ => Err(ModelError::NoOrders),
    }
}

/// The cut-offs of each split, ending at `as_of`: test = as_of - h, validation = test - h, and
/// training at validation - h and - 2h (while a year of history is left before them).
pub fn cutoffs(
    first: NaiveDate,
    as_of: NaiveDate,
    horizon_days: u32,
) -> Result<(Vec<NaiveDate>, NaiveDate, NaiveDate), ModelError> {
    let h = chrono::Days::new(u64::from(horizon_days));
    let test = as_of - h;
    let validation = test - h;
    let earliest = first + chrono::Days::new(180);
    let train: Vec<NaiveDate> = [validation - h, validation - h - h]
        .into_iter()
        .filter(|c| *c >= earliest)
        .collect();
    if train.is_empty() {
        return Err(ModelError::ShortHistory {
            first,
            as_of,
            needed_days: 180 + 3 * horizon_days,
        });
    }
    Ok((train, validation, test))
}

/// Write rows to a Parquet file (for peers such as scikit-learn to train on the very same rows).
fn write_parquet(path: &std::path::Path, batches: &[RecordBatch]) -> Result<(), ModelError> {
    let failed = |e: &dyn std::fmt::Display| ModelError::Artefact {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let file = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, first.schema(), None).map_err(|e| failed(&e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| failed(&e))?;
    }
    writer.close().map_err(|e| failed(&e))?;
    Ok(())
}

/// Train the churn model on the warehouse, with time-based splits.
pub async fn train_on_warehouse(warehouse: &Warehouse, options: &ChurnOptions) -> Result<ChurnModel, ModelError> {
    train_and_export(warehouse, options, None).await
}

/// Train as [`train_on_warehouse`] does and, with `export`, also write the rows of each split to
/// `train.parquet`, `validation.parquet` and `test.parquet` in that folder.
pub async fn train_and_export(
    warehouse: &Warehouse,
    options: &ChurnOptions,
    export: Option<&std::path::Path>,
) -> Result<ChurnModel, ModelError> {
    let (first, last) = order_span(warehouse).await?;
    let as_of = options.as_of.unwrap_or(last);
    let (train_cutoffs, validation_cutoff, test_cutoff) = cutoffs(first, as_of, options.horizon_days)?;
    let mut train_batches = Vec::new();
    for cutoff in &train_cutoffs {
        train_batches.extend(collect(warehouse, &features_sql(*cutoff, options.horizon_days, true)).await?);
    }
    let train_rows = Rows::new(train_batches, "churned")?;
    let validation = Rows::new(
        collect(warehouse, &features_sql(validation_cutoff, options.horizon_days, true)).await?,
        "churned",
    )?;
    let test = Rows::new(
        collect(warehouse, &features_sql(test_cutoff, options.horizon_days, true)).await?,
        "churned",
    )?;
    if let Some(dir) = export {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Artefact {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        write_parquet(&dir.join("train.parquet"), &train_rows.batches)?;
        write_parquet(&dir.join("validation.parquet"), &validation.batches)?;
        write_parquet(&dir.join("test.parquet"), &test.batches)?;
    }
    let window = Window {
        train: train_cutoffs.iter().map(NaiveDate::to_string).collect(),
        validation: validation_cutoff.to_string(),
        test: test_cutoff.to_string(),
        horizon_days: Some(options.horizon_days),
    };
    let splits = Splits {
        train: train_rows,
        validation,
        test,
    };
    train(
        &splits,
        "customer_key",
        "churned",
        Some("recency_days"),
        window,
        options,
    )
}

/// Today's customers scored at `as_of`, as rows of `ml.churn_score`.
pub async fn score_on_warehouse(
    warehouse: &Warehouse,
    model: &ChurnModel,
    as_of: NaiveDate,
    model_version: u64,
) -> Result<RecordBatch, ModelError> {
    let horizon = model.report.window.horizon_days.unwrap_or(90);
    let batches = collect(warehouse, &features_sql(as_of, horizon, false)).await?;
    let scores = model.score(&batches)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].probability.total_cmp(&scores[a].probability));
    let mut rank = vec![0i64; scores.len()];
    for (position, &index) in order.iter().enumerate() {
        rank[index] = position as i64 + 1;
    }
    let n = scores.len().max(1) as f64;
    let band = |r: i64| match r as f64 / n {
        f if f <= 0.1 => "high",
        f if f <= 0.3 => "medium",
        _ => "low",
    };
    let reason = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            scores.iter().map(|s| s.reasons.get(i).cloned()).collect::<Vec<_>>(),
        ))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_key", DataType::Int64, false),
        Field::new("as_of", DataType::Date32, false),
        Field::new("churn_score", DataType::Float64, false),
        Field::new("risk_rank", DataType::Int64, false),
        Field::new("risk_band", DataType::Utf8, false),
        Field::new("reason_1", DataType::Utf8, true),
        Field::new("reason_2", DataType::Utf8, true),
        Field::new("reason_3", DataType::Utf8, true),
        Field::new("horizon_days", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("model_version", DataType::Int64, false),
    ]));
    let rows = scores.len();
    let date = datafusion::arrow::array::Date32Array::from(vec![day_number(as_of) as i32; rows]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            scores
                .iter()
                .map(|s| s.key.parse::<i64>().unwrap_or_default())
                .collect::<Vec<_>>(),
        )),
        Arc::new(date),
        Arc::new(Float64Array::from(
            scores.iter().map(|s| s.probability).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(rank.clone())),
        Arc::new(StringArray::from(rank.iter().map(|&r| band(r)).collect::<Vec<_>>())),
        reason(0),
        reason(1),
        reason(2),
        Arc::new(Int64Array::from(vec![i64::from(horizon); rows])),
        Arc::new(StringArray::from(vec![model.classifier.algorithm().name(); rows])),
        Arc::new(Int64Array::from(vec![model_version as i64; rows])),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| ModelError::Query(e.to_string()))
}
