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
    /// Also forecast each product per region.
    pub by_region: bool,
    /// Last day of data; by default the last order date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
}

impl Default for DemandOptions {
    fn default() -> Self {
        Self {
            horizon_weeks: 12,
            folds: 4,
            by_region: true,
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
    /// Region, or `None` for the product's total.
    pub region: Option<String>,
    /// Units per week.
    pub units: Vec<f64>,
    /// Net revenue per week (for the realised price).
    pub revenue: Vec<f64>,
    /// Depth of the category's promotion in each week, 0 without one (history, then the
    /// horizon: promotions are planned ahead).
    pub promotion: Vec<f64>,
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
                COALESCE(region, 'unknown') AS region, CAST(order_date AS VARCHAR) AS day, \
                CAST(SUM(quantity) AS DOUBLE) AS units, CAST(SUM(net_amount) AS DOUBLE) AS revenue \
         FROM core.order_line \
         WHERE status <> 'cancelled' AND product_key IS NOT NULL AND order_date <= DATE '{end}' \
         GROUP BY product_key, sku, category, region, order_date"
    );
    let batches = collect(warehouse, &sql).await?;
    let (products, skus, categories, regions, days) = (
        keys(&batches, "product_key")?,
        keys(&batches, "sku")?,
        keys(&batches, "category")?,
        keys(&batches, "region")?,
        keys(&batches, "day")?,
    );
    let number = |column: &str| -> Result<Vec<f64>, ModelError> {
        Ok(keys(&batches, column)?
            .iter()
            .map(|u| u.parse().unwrap_or(0.0))
            .collect())
    };
    let (units, revenue) = (number("units")?, number("revenue")?);
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
    // Each product once in total (region None) and once per region it sells in.
    let mut by_series: BTreeMap<(i64, Option<String>), ProductSeries> = BTreeMap::new();
    for i in 0..days.len() {
        let key: i64 = products[i].parse().unwrap_or_default();
        let week = ((monday(parse(&days[i])?) - first_week).num_days() / 7) as usize;
        if week >= weeks {
            continue;
        }
        for region in [None, Some(regions[i].clone())] {
            let series = by_series.entry((key, region.clone())).or_insert_with(|| ProductSeries {
                product_key: key,
                sku: skus[i].clone(),
                category: categories[i].clone(),
                region,
                units: vec![0.0; weeks],
                revenue: vec![0.0; weeks],
                promotion: vec![0.0; weeks + horizon],
            });
            series.units[week] += units[i];
            series.revenue[week] += revenue[i];
        }
    }
    // Promotions: campaigns aimed at a category, by the weeks they overlap, with the depth their
    // offer states ("15% off ..."; 10% when it states none).
    let promotions = collect(
        warehouse,
        "SELECT target_category, offer, CAST(started_at AS VARCHAR) AS started, CAST(ended_at AS VARCHAR) AS ended \
         FROM core.campaign WHERE target_category IS NOT NULL AND started_at IS NOT NULL AND ended_at IS NOT NULL",
    )
    .await?;
    let (targets, offers, starts, ends) = (
        keys(&promotions, "target_category")?,
        keys(&promotions, "offer")?,
        keys(&promotions, "started")?,
        keys(&promotions, "ended")?,
    );
    for i in 0..targets.len() {
        let (Ok(start), Ok(end)) = (parse(&starts[i]), parse(&ends[i])) else {
            continue;
        };
        let depth = offers[i]
            .split('%')
            .next()
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|_| offers[i].contains('%'))
            .map_or(0.10, |n| (n / 100.0).clamp(0.0, 1.0));
        let week_index = |d: NaiveDate| (monday(d) - first_week).num_days() / 7;
        let (from, to) = (
            week_index(start).max(0),
            week_index(end).min((weeks + horizon) as i64 - 1),
        );
        for series in by_series
            .values_mut()
            .filter(|s| s.category.eq_ignore_ascii_case(&targets[i]))
        {
            for week in from..=to {
                let w = week as usize;
                series.promotion[w] = series.promotion[w].max(depth);
            }
        }
    }
    // Each series starts at its first sale: zeros before launch are not demand.
    let products = by_series
        .into_values()
        .filter_map(|mut s| {
            let start = s.units.iter().position(|&u| u > 0.0)?;
            s.units.drain(..start);
            s.revenue.drain(..start);
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

/// Features of the direct regression, scaled by the series' recent level.
const FEATURES: [&str; 10] = [
    "last_4_weeks",
    "last_26_weeks",
    "same_week_last_year",
    "year_on_year_growth",
    "week_of_year_sin",
    "week_of_year_cos",
    "promotion_depth",
    "promotion_depth_at_origin",
    "price_index",
    "steps_ahead",
];

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The level a series' rows are divided by at an origin: its mean over the last 13 weeks, or
/// over the last year when those were empty.
fn level(y: &[f64]) -> f64 {
    let recent = mean(&y[y.len().saturating_sub(13)..]);
    if recent > 0.0 {
        recent
    } else {
        mean(&y[y.len().saturating_sub(52)..])
    }
}

/// One series cut at a forecast origin: units and revenue up to it, promotions beyond it too.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    /// Units per week before the origin.
    pub units: &'a [f64],
    /// Net revenue per week before the origin.
    pub revenue: &'a [f64],
    /// Promotion depth per week, history and horizon.
    pub promotion: &'a [f64],
    /// Week of the year of the series' first week (0-based).
    pub first_week_of_year: usize,
}

impl<'a> Origin<'a> {
    fn of(series: &'a ProductSeries, origin: usize, first_week_of_year: usize) -> Self {
        Self {
            units: &series.units[..origin],
            revenue: &series.revenue[..origin],
            promotion: &series.promotion,
            first_week_of_year,
        }
    }
}

/// The realised price of the last 4 weeks relative to the last year's (1 when unknown).
fn price_index(units: &[f64], revenue: &[f64]) -> f64 {
    let price = |weeks: usize| {
        let from = units.len().saturating_sub(weeks);
        let (u, r): (f64, f64) = (units[from..].iter().sum(), revenue[from..].iter().sum());
        (u > 0.0).then(|| r / u)
    };
    match (price(4), price(52)) {
        (Some(recent), Some(year)) if year > 0.0 => (recent / year).clamp(0.2, 5.0),
        _ => 1.0,
    }
}

/// One regression row: features for the week `h` steps (1-based) after the origin.
fn features(at: Origin<'_>, h: usize, horizon: usize) -> Option<[f64; 10]> {
    let history = at.units;
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
    let week_of_year = (at.first_week_of_year + target) % SEASON;
    let angle = 2.0 * std::f64::consts::PI * week_of_year as f64 / SEASON as f64;
    let depth = |i: usize| at.promotion.get(i).copied().unwrap_or(0.0);
    Some([
        mean(&history[n.saturating_sub(4)..]) / scale,
        last_26,
        same_week,
        growth,
        angle.sin(),
        angle.cos(),
        depth(target),
        depth(n.saturating_sub(1)),
        price_index(history, at.revenue),
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

/// Fit on every series up to its end (each `Origin` holds the weeks it may learn from), with
/// forecast origins every 2 weeks.
pub fn fit_regression(series: &[Origin<'_>], horizon: usize) -> Option<DemandRegression> {
    let mut rows: Vec<[f64; 10]> = Vec::new();
    let mut targets = Vec::new();
    let mut steps = Vec::new();
    let mut scales = Vec::new();
    for whole in series {
        let y = whole.units;
        let mut origin = 26;
        while origin + horizon <= y.len() {
            let at = Origin {
                units: &y[..origin],
                revenue: &whole.revenue[..origin],
                ..*whole
            };
            let scale = level(at.units);
            for h in 1..=horizon {
                if let Some(x) = features(at, h, horizon) {
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
    /// Forecast `horizon` weeks after the origin.
    pub fn forecast(&self, at: Origin<'_>, horizon: usize) -> Forecast {
        let scale = level(at.units);
        let mut out = Forecast {
            method: "linear_regression".into(),
            ..Forecast::default()
        };
        for h in 1..=horizon {
            let (point, q) = match features(at, h, horizon) {
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

/// What one level (products, or products by region) found.
#[derive(Debug, Clone, Serialize)]
pub struct LevelRun {
    /// Per method, averaged over series.
    pub backtests: Vec<Backtest>,
    /// The method with the lowest backtest MASE.
    pub chosen: String,
    /// Whether it beats the seasonal naive baseline (or is it).
    pub beats_baseline: bool,
    /// Regression coefficients.
    pub coefficients: Vec<(String, f64)>,
    /// Series forecast.
    pub series: usize,
}

/// Backtests of both levels, the choices, and the forecasts.
#[derive(Debug, Clone, Serialize)]
pub struct DemandRun {
    /// Per product (all regions): backtests per method, averaged over products.
    pub backtests: Vec<Backtest>,
    /// The method chosen per product.
    pub chosen: String,
    /// Whether it beats the seasonal naive baseline.
    pub beats_baseline: bool,
    /// Regression coefficients per product.
    pub coefficients: Vec<(String, f64)>,
    /// The same per product and region.
    pub by_region: Option<LevelRun>,
    /// Monday of the first forecast week.
    pub first_forecast_week: NaiveDate,
    /// Per series: key, SKU, category, region (`None` for the product) and forecast.
    #[serde(skip)]
    pub forecasts: Vec<(i64, String, String, Option<String>, Forecast)>,
}

/// Average backtests of one method over series.
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

/// Weeks of history a series needs for the backtest.
fn needed_weeks(options: &DemandOptions) -> usize {
    26 + options.horizon_weeks.max(1) * (options.folds.max(1) + 1)
}

/// Backtest the three methods on one level's series, choose, and forecast every series.
fn run_level(
    history: &DemandHistory,
    series: &[&ProductSeries],
    options: &DemandOptions,
) -> Result<(LevelRun, Vec<Forecast>), ModelError> {
    let horizon = options.horizon_weeks.max(1);
    let folds = options.folds.max(1);
    let week_of_year = |s: &ProductSeries| {
        let start = history.first_week + Days::new(7 * (history.weeks - s.units.len()) as u64);
        start.iso_week().week0() as usize
    };
    let usable: Vec<&ProductSeries> = series
        .iter()
        .copied()
        .filter(|s| s.units.len() >= needed_weeks(options))
        .collect();
    if usable.is_empty() {
        return Err(ModelError::Forecast(format!(
            "no product has {} weeks of sales history, which {} backtest folds of {} weeks need",
            needed_weeks(options),
            folds,
            horizon
        )));
    }
    let (mut naive, mut ets, mut regression) = (Vec::new(), Vec::new(), Vec::new());
    // The regression is refitted for each fold on the weeks before that fold's origin only.
    let fold_models: Vec<Option<DemandRegression>> = (1..=folds)
        .map(|fold| {
            let cut = fold * horizon;
            let training: Vec<Origin<'_>> = usable
                .iter()
                .map(|s| Origin::of(s, s.units.len() - cut, week_of_year(s)))
                .collect();
            fit_regression(&training, horizon)
        })
        .collect();
    for s in &usable {
        let y = &s.units;
        naive.push(backtest("seasonal_naive", y, SEASON, horizon, folds, |h, k| {
            seasonal_naive(h, SEASON, k).floor(0.0)
        }));
        ets.push(backtest("auto_ets", y, SEASON, horizon, folds, |h, k| {
            ets_forecast(h, SEASON, k).floor(0.0)
        }));
        regression.push(backtest("linear_regression", y, SEASON, horizon, folds, |h, k| {
            let fold = (y.len() - h.len()) / horizon;
            match fold_models.get(fold.saturating_sub(1)).and_then(Option::as_ref) {
                Some(model) => model.forecast(Origin::of(s, h.len(), week_of_year(s)), k),
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
    let all: Vec<Origin<'_>> = series
        .iter()
        .map(|s| Origin::of(s, s.units.len(), week_of_year(s)))
        .collect();
    let final_model = fit_regression(&all, horizon);
    let forecasts = series
        .iter()
        .map(|s| match (best.method.as_str(), &final_model) {
            ("linear_regression", Some(model)) => {
                model.forecast(Origin::of(s, s.units.len(), week_of_year(s)), horizon)
            }
            ("auto_ets", _) => ets_forecast(&s.units, SEASON, horizon).floor(0.0),
            _ => seasonal_naive(&s.units, SEASON, horizon).floor(0.0),
        })
        .collect();
    Ok((
        LevelRun {
            beats_baseline: best.mase.unwrap_or(f64::MAX) < baseline || best.method == "seasonal_naive",
            chosen: best.method.clone(),
            coefficients: final_model.map(|m| m.coefficients()).unwrap_or_default(),
            series: series.len(),
            backtests,
        },
        forecasts,
    ))
}

/// The product series the backtest uses (those long enough for its folds), as CSV lines
/// `product_key,week,units` (week counted from each series' first sale), for peers to forecast
/// the very same numbers.
pub fn backtest_series_csv(history: &DemandHistory, options: &DemandOptions) -> String {
    let needed = needed_weeks(options);
    let mut out = String::from("product_key,week,units\n");
    for s in history
        .products
        .iter()
        .filter(|s| s.region.is_none() && s.units.len() >= needed)
    {
        for (week, units) in s.units.iter().enumerate() {
            out.push_str(&format!("{},{week},{units}\n", s.product_key));
        }
    }
    out
}

/// Backtest the three methods per product and (with `by_region`) per product and region, choose
/// per level, and forecast.
pub fn run(history: &DemandHistory, options: &DemandOptions) -> Result<DemandRun, ModelError> {
    let totals: Vec<&ProductSeries> = history.products.iter().filter(|s| s.region.is_none()).collect();
    let (product_level, product_forecasts) = run_level(history, &totals, options)?;
    let mut forecasts: Vec<(i64, String, String, Option<String>, Forecast)> = totals
        .iter()
        .zip(product_forecasts)
        .map(|(s, f)| (s.product_key, s.sku.clone(), s.category.clone(), None, f))
        .collect();
    let mut by_region = None;
    if options.by_region {
        let regional: Vec<&ProductSeries> = history.products.iter().filter(|s| s.region.is_some()).collect();
        if let Ok((level, regional_forecasts)) = run_level(history, &regional, options) {
            forecasts.extend(
                regional
                    .iter()
                    .zip(regional_forecasts)
                    .map(|(s, f)| (s.product_key, s.sku.clone(), s.category.clone(), s.region.clone(), f)),
            );
            by_region = Some(level);
        }
    }
    Ok(DemandRun {
        backtests: product_level.backtests,
        chosen: product_level.chosen,
        beats_baseline: product_level.beats_baseline,
        coefficients: product_level.coefficients,
        by_region,
        first_forecast_week: history.first_week + Days::new(7 * history.weeks as u64),
        forecasts,
    })
}
