//! Weekly demand per product: a global linfa regression against two baselines (seasonal naive
//! and AutoETS), compared in rolling-origin backtests; the method with the lowest MASE forecasts
//! the next weeks with 80% and 95% intervals.
//!
//! The regression is "direct" and pooled over products: each row is one product, one forecast
//! origin and one step ahead, with the target and the features divided by the product's recent
//! level (so that a fast mover and a slow one share the same coefficients): recent levels, the
//! same week a year earlier and the year-on-year growth, the week of the year, and whether a
//! promotion of the product's category runs in the target week. Its intervals are the empirical
//! quantiles of its scaled training residuals for each step ahead.

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use linfa::Dataset;
use linfa::prelude::{Fit, Predict};
use linfa_linear::{FittedLinearRegression, LinearRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use tributary_warehouse::engine::Warehouse;

use crate::ModelError;
use crate::churn::collect;
use crate::design::keys;
use crate::forecast::{Backtest, Forecast, backtest, ets_forecast, seasonal_naive};

/// Weeks in a season.
const SEASON: usize = 52;

/// Choices for demand forecasting (`[demand]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemandOptions {
    /// Weeks ahead.
    pub horizon_weeks: usize,
    /// Backtest origins.
    pub folds: usize,
    /// Last day of data; by default the last order date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
}

impl Default for DemandOptions {
    fn default() -> Self {
        Self {
            horizon_weeks: 12,
            folds: 4,
            as_of: None,
        }
    }
}

/// One product's weekly units, from its first week with sales to the last complete week.
#[derive(Debug, Clone)]
pub struct ProductSeries {
    /// `core.product.product_key`.
    pub product_key: i64,
    /// SKU.
    pub sku: String,
    /// Category.
    pub category: String,
    /// Units per week.
    pub units: Vec<f64>,
    /// Whether a promotion of the category runs in each week (history, then the horizon).
    pub promotion: Vec<bool>,
}

/// Demand history of every product, weekly, with the Monday of the first week.
#[derive(Debug, Clone)]
pub struct DemandHistory {
    /// Monday of week 0.
    pub first_week: NaiveDate,
    /// Weeks of history (all series end at the same week).
    pub weeks: usize,
    /// Per product.
    pub products: Vec<ProductSeries>,
}

fn monday(date: NaiveDate) -> NaiveDate {
    date - Days::new(u64::from(date.weekday().num_days_from_monday()))
}

/// Load weekly units per product up to the last complete week on or before `as_of`.
pub async fn history(warehouse: &Warehouse, as_of: NaiveDate, horizon: usize) -> Result<DemandHistory, ModelError> {
    // The last complete week ends on the Sunday on or before as_of.
    let end = monday(as_of + Days::new(1)) - Days::new(1);
    let sql = format!(
        "SELECT CAST(product_key AS VARCHAR) AS product_key, sku, COALESCE(category, '') AS category, \
                CAST(order_date AS VARCHAR) AS day, CAST(SUM(quantity) AS DOUBLE) AS units \
         FROM core.order_line \
         WHERE status <> 'cancelled' AND product_key IS NOT NULL AND order_date <= DATE '{end}' \
         GROUP BY product_key, sku, category, order_date"
    );
    let batches = collect(warehouse, &sql).await?;
    let (products, skus, categories, days) = (
        keys(&batches, "product_key")?,
        keys(&batches, "sku")?,
        keys(&batches, "category")?,
        keys(&batches, "day")?,
    );
    let units: Vec<f64> = keys(&batches, "units")?
        .iter()
        .map(|u| u.parse().unwrap_or(0.0))
        .collect();
    let parse = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| ModelError::Query(format!("{d}: {e}")));
    let mut first = None::<NaiveDate>;
    for d in &days {
        let week = monday(parse(d)?);
        first = Some(first.map_or(week, |f: NaiveDate| f.min(week)));
    }
    let Some(first_week) = first else {
        return Err(ModelError::NoOrders);
    };
    let weeks = ((end - first_week).num_days() as usize + 1) / 7;
    let mut by_product: BTreeMap<i64, ProductSeries> = BTreeMap::new();
    for i in 0..days.len() {
        let key: i64 = products[i].parse().unwrap_or_default();
        let week = ((monday(parse(&days[i])?) - first_week).num_days() / 7) as usize;
        let series = by_product.entry(key).or_insert_with(|| ProductSeries {
            product_key: key,
            sku: skus[i].clone(),
            category: categories[i].clone(),
            units: vec![0.0; weeks],
            promotion: vec![false; weeks + horizon],
        });
        if week < weeks {
            series.units[week] += units[i];
        }
    }
    // Promotions: campaigns with an offer aimed at a category, by the weeks they overlap.
    let promotions = collect(
        warehouse,
        "SELECT target_category, CAST(started_at AS VARCHAR) AS started, CAST(ended_at AS VARCHAR) AS ended \
         FROM core.campaign WHERE target_category IS NOT NULL AND started_at IS NOT NULL AND ended_at IS NOT NULL",
    )
    .await?;
    let (targets, starts, ends) = (
        keys(&promotions, "target_category")?,
        keys(&promotions, "started")?,
        keys(&promotions, "ended")?,
    );
    for i in 0..targets.len() {
        let (Ok(start), Ok(end)) = (parse(&starts[i]), parse(&ends[i])) else {
            continue;
        };
        let week_index = |d: NaiveDate| (monday(d) - first_week).num_days() / 7;
        let (from, to) = (
            week_index(start).max(0),
            week_index(end).min((weeks + horizon) as i64 - 1),
        );
        for series in by_product
            .values_mut()
            .filter(|s| s.category.eq_ignore_ascii_case(&targets[i]))
        {
            for week in from..=to {
                series.promotion[week as usize] = true;
            }
        }
    }
    // Each product's series starts at its first sale: zeros before launch are not demand.
    let products = by_product
        .into_values()
        .filter_map(|mut s| {
            let start = s.units.iter().position(|&u| u > 0.0)?;
            s.units.drain(..start);
            s.promotion.drain(..start);
            Some(s)
        })
        .collect();
    Ok(DemandHistory {
        first_week,
        weeks,
        products,
    })
}

/// Features of the direct regression, scaled by the product's recent level.
const FEATURES: [&str; 9] = [
    "last_4_weeks",
    "last_26_weeks",
    "same_week_last_year",
    "year_on_year_growth",
    "week_of_year_sin",
    "week_of_year_cos",
    "promotion",
    "promotion_at_origin",
    "steps_ahead",
];

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The level a product's rows are divided by at an origin: its mean over the last 13 weeks, or
/// over the last year when those were empty.
fn level(y: &[f64]) -> f64 {
    let recent = mean(&y[y.len().saturating_sub(13)..]);
    if recent > 0.0 {
        recent
    } else {
        mean(&y[y.len().saturating_sub(52)..])
    }
}

/// One regression row: features for the week `h` steps (1-based) after the end of `history`.
fn features(history: &[f64], promotion: &[bool], h: usize, week_of_origin: usize, horizon: usize) -> Option<[f64; 9]> {
    let scale = level(history);
    if scale <= 0.0 {
        return None;
    }
    let n = history.len();
    let target = n + h - 1;
    let last_26 = mean(&history[n.saturating_sub(26)..]) / scale;
    let (same_week, growth) = if target > SEASON && n >= SEASON + 13 {
        let around = &history[target - SEASON - 1..(target - SEASON + 2).min(n)];
        let year_ago_level = mean(&history[n - SEASON - 13..n - SEASON]);
        (
            mean(around) / scale,
            if year_ago_level > 0.0 {
                (scale / year_ago_level).min(5.0)
            } else {
                1.0
            },
        )
    } else {
        (last_26, 1.0)
    };
    let angle = 2.0 * std::f64::consts::PI * ((week_of_origin + h) % SEASON) as f64 / SEASON as f64;
    let flag = |i: usize| {
        if promotion.get(i).copied().unwrap_or(false) {
            1.0
        } else {
            0.0
        }
    };
    Some([
        mean(&history[n.saturating_sub(4)..]) / scale,
        last_26,
        same_week,
        growth,
        angle.sin(),
        angle.cos(),
        flag(target),
        flag(n.saturating_sub(1)),
        h as f64 / horizon as f64,
    ])
}

/// The fitted global regression and its residual quantiles per step ahead.
pub struct DemandRegression {
    model: FittedLinearRegression<f64>,
    /// Per step ahead: quantiles (2.5%, 10%, 90%, 97.5%) of the scaled residuals times
    /// sqrt(level).
    quantiles: Vec<[f64; 4]>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo as f64)
}

/// Fit on every product, using only weeks before `until` (exclusive, in each series' own index
/// from the end: series are aligned at their end), origins every 2 weeks.
pub fn fit_regression(series: &[(&[f64], &[bool], usize)], horizon: usize) -> Option<DemandRegression> {
    let mut rows: Vec<[f64; 9]> = Vec::new();
    let mut targets = Vec::new();
    let mut steps = Vec::new();
    let mut scales = Vec::new();
    for &(y, promotion, first_week_of_year) in series {
        let mut origin = 26;
        while origin + horizon <= y.len() {
            for h in 1..=horizon {
                if let Some(x) = features(&y[..origin], promotion, h, first_week_of_year + origin, horizon) {
                    let scale = level(&y[..origin]);
                    rows.push(x);
                    targets.push(y[origin + h - 1] / scale);
                    steps.push(h);
                    scales.push(scale);
                }
            }
            origin += 2;
        }
    }
    if rows.len() < 50 {
        return None;
    }
    let x = Array2::from_shape_vec((rows.len(), FEATURES.len()), rows.concat()).ok()?;
    let y = Array1::from(targets.clone());
    let model = LinearRegression::default().fit(&Dataset::new(x.clone(), y)).ok()?;
    let predicted: Array1<f64> = model.predict(&x);
    let mut residuals: Vec<Vec<f64>> = vec![Vec::new(); horizon];
    // Counts are noisier, relative to their level, for slow movers: residuals are put on a
    // common footing by sqrt(level) (as for Poisson counts) before their quantiles are taken.
    for i in 0..targets.len() {
        residuals[steps[i] - 1].push((targets[i] - predicted[i]) * scales[i].sqrt());
    }
    let quantiles = residuals
        .into_iter()
        .map(|mut r| {
            r.sort_by(f64::total_cmp);
            [
                quantile(&r, 0.025),
                quantile(&r, 0.10),
                quantile(&r, 0.90),
                quantile(&r, 0.975),
            ]
        })
        .collect();
    Some(DemandRegression { model, quantiles })
}

impl DemandRegression {
    /// Forecast `horizon` weeks after `history`.
    pub fn forecast(&self, history: &[f64], promotion: &[bool], week_of_origin: usize, horizon: usize) -> Forecast {
        let scale = level(history);
        let mut out = Forecast {
            method: "linear_regression".into(),
            ..Forecast::default()
        };
        for h in 1..=horizon {
            let (point, q) = match features(history, promotion, h, week_of_origin, horizon) {
                Some(x) => {
                    let x = Array2::from_shape_vec((1, FEATURES.len()), x.to_vec()).expect("one row");
                    let predicted: Array1<f64> = self.model.predict(&x);
                    (predicted[0], self.quantiles[(h - 1).min(self.quantiles.len() - 1)])
                }
                None => (0.0, [0.0; 4]),
            };
            let spread = scale.max(1e-9).sqrt();
            out.mean.push((point * scale).max(0.0));
            out.lower_95.push(((point + q[0] / spread) * scale).max(0.0));
            out.lower_80.push(((point + q[1] / spread) * scale).max(0.0));
            out.upper_80.push(((point + q[2] / spread) * scale).max(0.0));
            out.upper_95.push(((point + q[3] / spread) * scale).max(0.0));
        }
        out
    }

    /// Coefficients by feature name, for the report.
    pub fn coefficients(&self) -> Vec<(String, f64)> {
        let mut out = vec![("intercept".to_string(), self.model.intercept())];
        out.extend(
            FEATURES
                .iter()
                .map(|f| f.to_string())
                .zip(self.model.params().iter().copied()),
        );
        out
    }
}

/// Backtest of every method, the choice, and the forecasts.
#[derive(Debug, Clone, Serialize)]
pub struct DemandRun {
    /// Per method, averaged over products.
    pub backtests: Vec<Backtest>,
    /// The method with the lowest backtest MASE.
    pub chosen: String,
    /// Whether it beats the seasonal naive baseline.
    pub beats_baseline: bool,
    /// Regression coefficients.
    pub coefficients: Vec<(String, f64)>,
    /// Monday of the first forecast week.
    pub first_forecast_week: NaiveDate,
    /// Per product: key, SKU, category and forecast.
    #[serde(skip)]
    pub forecasts: Vec<(i64, String, String, Forecast)>,
}

/// Average backtests of one method over products.
fn average(name: &str, runs: &[Backtest]) -> Backtest {
    let mases: Vec<f64> = runs.iter().filter_map(|b| b.mase).collect();
    let n = runs.len().max(1) as f64;
    Backtest {
        method: name.to_string(),
        folds: runs.iter().map(|b| b.folds).max().unwrap_or(0),
        mase: (!mases.is_empty()).then(|| mean(&mases)),
        smape: runs.iter().map(|b| b.smape).sum::<f64>() / n,
        coverage_80: runs.iter().map(|b| b.coverage_80).sum::<f64>() / n,
        coverage_95: runs.iter().map(|b| b.coverage_95).sum::<f64>() / n,
    }
}

/// The series the backtest uses (those long enough for its folds), as CSV lines
/// `product_key,week,units` (week counted from each series' first sale), for peers to
/// forecast the very same numbers.
pub fn backtest_series_csv(history: &DemandHistory, options: &DemandOptions) -> String {
    let needed = 26 + options.horizon_weeks.max(1) * (options.folds.max(1) + 1);
    let mut out = String::from("product_key,week,units\n");
    for s in history.products.iter().filter(|s| s.units.len() >= needed) {
        for (week, units) in s.units.iter().enumerate() {
            out.push_str(&format!("{},{week},{units}\n", s.product_key));
        }
    }
    out
}

/// Backtest the three methods on `history`, choose, and forecast.
pub fn run(history: &DemandHistory, options: &DemandOptions) -> Result<DemandRun, ModelError> {
    let horizon = options.horizon_weeks.max(1);
    let folds = options.folds.max(1);
    let week_of_year = |series: &ProductSeries| {
        let start = history.first_week + Days::new(7 * (history.weeks - series.units.len()) as u64);
        start.iso_week().week0() as usize
    };
    let usable: Vec<&ProductSeries> = history
        .products
        .iter()
        .filter(|s| s.units.len() >= 26 + horizon * (folds + 1))
        .collect();
    if usable.is_empty() {
        return Err(ModelError::Forecast(format!(
            "no product has {} weeks of sales history, which {} backtest folds of {} weeks need",
            26 + horizon * (folds + 1),
            folds,
            horizon
        )));
    }
    let (mut naive, mut ets, mut regression) = (Vec::new(), Vec::new(), Vec::new());
    // The regression is refitted for each fold on the weeks before that fold's origin only.
    let fold_models: Vec<Option<DemandRegression>> = (1..=folds)
        .map(|fold| {
            let cut = fold * horizon;
            let training: Vec<(&[f64], &[bool], usize)> = usable
                .iter()
                .map(|s| (&s.units[..s.units.len() - cut], &s.promotion[..], week_of_year(s)))
                .collect();
            fit_regression(&training, horizon)
        })
        .collect();
    for series in &usable {
        let y = &series.units;
        naive.push(backtest("seasonal_naive", y, SEASON, horizon, folds, |h, k| {
            seasonal_naive(h, SEASON, k).floor(0.0)
        }));
        ets.push(backtest("auto_ets", y, SEASON, horizon, folds, |h, k| {
            ets_forecast(h, SEASON, k).floor(0.0)
        }));
        regression.push(backtest("linear_regression", y, SEASON, horizon, folds, |h, k| {
            let fold = (y.len() - h.len()) / horizon;
            match fold_models.get(fold.saturating_sub(1)).and_then(Option::as_ref) {
                Some(model) => model.forecast(h, &series.promotion, week_of_year(series) + h.len(), k),
                None => seasonal_naive(h, SEASON, k).floor(0.0),
            }
        }));
    }
    let backtests = vec![
        average("seasonal_naive", &naive),
        average("auto_ets", &ets),
        average("linear_regression", &regression),
    ];
    let best = backtests
        .iter()
        .min_by(|a, b| a.mase.unwrap_or(f64::MAX).total_cmp(&b.mase.unwrap_or(f64::MAX)))
        .expect("three methods")
        .clone();
    let baseline = backtests[0].mase.unwrap_or(f64::MAX);
    let all: Vec<(&[f64], &[bool], usize)> = history
        .products
        .iter()
        .map(|s| (&s.units[..], &s.promotion[..], week_of_year(s)))
        .collect();
    let final_model = fit_regression(&all, horizon);
    let forecasts = history
        .products
        .iter()
        .map(|s| {
            let forecast = match (best.method.as_str(), &final_model) {
                ("linear_regression", Some(model)) => {
                    model.forecast(&s.units, &s.promotion, week_of_year(s) + s.units.len(), horizon)
                }
                ("auto_ets", _) => ets_forecast(&s.units, SEASON, horizon).floor(0.0),
                _ => seasonal_naive(&s.units, SEASON, horizon).floor(0.0),
            };
            (s.product_key, s.sku.clone(), s.category.clone(), forecast)
        })
        .collect();
    Ok(DemandRun {
        beats_baseline: best.mase.unwrap_or(f64::MAX) < baseline || best.method == "seasonal_naive",
        chosen: best.method.clone(),
        coefficients: final_model.map(|m| m.coefficients()).unwrap_or_default(),
        first_forecast_week: history.first_week + Days::new(7 * history.weeks as u64),
        backtests,
        forecasts,
    })
}
