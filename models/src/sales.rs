//! Monthly revenue forecasts by region, channel and category, reconciled bottom-up: every
//! region x channel x category series is forecast with AutoETS (or the seasonal naive forecast
//! when it wins the backtest), and every total above it is the sum of its parts, so the parts
//! always add up. An aggregate's intervals come from its own ETS fit (sums of the parts'
//! intervals would overstate the spread), centred on the reconciled mean.
//!
//! Revenue is the semantic layer's `revenue`: net sales of orders not cancelled.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};
use serde::Serialize;
use tributary_warehouse::engine::Warehouse;

use crate::ModelError;
use crate::churn::collect;
use crate::design::keys;
use crate::forecast::{Backtest, Forecast, backtest, ets_forecast, seasonal_naive};

/// Months in a season.
const SEASON: usize = 12;

/// One forecast series: the level it sums over and its key there.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SalesSeries {
    /// `total`, `region`, `channel`, `category` or `region_channel_category`.
    pub level: String,
    /// Region, or `None` when summed over.
    pub region: Option<String>,
    /// Channel, or `None` when summed over.
    pub channel: Option<String>,
    /// Category, or `None` when summed over.
    pub category: Option<String>,
    /// The forecast.
    #[serde(skip)]
    pub forecast: Forecast,
}

/// What the sales forecast found.
#[derive(Debug, Clone, Serialize)]
pub struct SalesRun {
    /// First day of the first forecast month.
    pub first_month: NaiveDate,
    /// Months of history used.
    pub history_months: usize,
    /// Backtests of the total series, per method.
    pub backtests: Vec<Backtest>,
    /// The method used for the bottom series.
    pub chosen: String,
    /// Every series: bottom and aggregates.
    pub series: Vec<SalesSeries>,
}

/// An aggregate series: level, then region, channel and category (`None` where summed over).
type AggregateKey = (String, Option<String>, Option<String>, Option<String>);

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).expect("day 1 exists")
}

/// Forecast monthly revenue `horizon` months past the last complete month on or before `as_of`.
pub async fn run(
    warehouse: &Warehouse,
    as_of: NaiveDate,
    horizon: usize,
    folds: usize,
) -> Result<SalesRun, ModelError> {
    // The last complete month ends on as_of when as_of is a month's last day, else before it.
    let next_month = first_of_month(as_of + chrono::Days::new(1));
    let end = next_month - chrono::Days::new(1);
    let sql = format!(
        "SELECT COALESCE(region, 'unknown') AS region, COALESCE(channel, 'unknown') AS channel, \
                COALESCE(category, 'unknown') AS category, \
                CAST(date_trunc('month', order_date) AS DATE) AS month_start, \
                CAST(SUM(net_amount) AS DOUBLE) AS revenue \
         FROM core.order_line WHERE status <> 'cancelled' AND order_date <= DATE '{end}' \
         GROUP BY 1, 2, 3, 4"
    );
    let batches = collect(warehouse, &sql).await?;
    let (regions, channels, categories, months) = (
        keys(&batches, "region")?,
        keys(&batches, "channel")?,
        keys(&batches, "category")?,
        keys(&batches, "month_start")?,
    );
    let revenue: Vec<f64> = keys(&batches, "revenue")?
        .iter()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let parse = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| ModelError::Query(format!("{d}: {e}")));
    let mut first = None::<NaiveDate>;
    for m in &months {
        let m = parse(m)?;
        first = Some(first.map_or(m, |f: NaiveDate| f.min(m)));
    }
    let first = first.ok_or(ModelError::NoOrders)?;
    let month_index =
        |d: NaiveDate| ((d.year() - first.year()) * 12 + d.month() as i32 - first.month() as i32) as usize;
    let length = month_index(first_of_month(end)) + 1;
    if length < 2 * SEASON.min(6) {
        return Err(ModelError::Forecast(format!(
            "the sales forecast needs at least 12 months of orders; there are {length}"
        )));
    }
    let mut bottom: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for i in 0..months.len() {
        let series = bottom
            .entry((regions[i].clone(), channels[i].clone(), categories[i].clone()))
            .or_insert_with(|| vec![0.0; length]);
        series[month_index(parse(&months[i])?)] += revenue[i];
    }
    let total: Vec<f64> = (0..length).map(|t| bottom.values().map(|s| s[t]).sum()).collect();

    // Choose the method on the total's backtest: the bottom series are too short and noisy to
    // choose on one by one.
    let backtests = vec![
        backtest("seasonal_naive", &total, SEASON, horizon, folds, |h, k| {
            seasonal_naive(h, SEASON, k)
        }),
        backtest("auto_ets", &total, SEASON, horizon, folds, |h, k| {
            ets_forecast(h, SEASON, k)
        }),
    ];
    let chosen = if backtests[1].mase.unwrap_or(f64::MAX) <= backtests[0].mase.unwrap_or(f64::MAX) {
        "auto_ets"
    } else {
        "seasonal_naive"
    };
    let method = |y: &[f64]| match chosen {
        "auto_ets" => ets_forecast(y, SEASON, horizon),
        _ => seasonal_naive(y, SEASON, horizon),
    };

    let mut series = Vec::new();
    let mut sums: BTreeMap<AggregateKey, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for ((region, channel, category), y) in &bottom {
        let forecast = method(y);
        let keys = [
            ("total", None, None, None),
            ("region", Some(region), None, None),
            ("channel", None, Some(channel), None),
            ("category", None, None, Some(category)),
        ];
        for (level, r, c, k) in keys {
            let entry = sums
                .entry((level.to_string(), r.cloned(), c.cloned(), k.cloned()))
                .or_insert_with(|| (vec![0.0; length], vec![0.0; horizon]));
            entry.0.iter_mut().zip(y).for_each(|(a, b)| *a += b);
            entry.1.iter_mut().zip(&forecast.mean).for_each(|(a, b)| *a += b);
        }
        series.push(SalesSeries {
            level: "region_channel_category".into(),
            region: Some(region.clone()),
            channel: Some(channel.clone()),
            category: Some(category.clone()),
            forecast,
        });
    }
    for ((level, region, channel, category), (history, mean)) in sums {
        // The aggregate's own fit gives the spread; the reconciled sum gives the centre.
        let own = method(&history);
        let shift: Vec<f64> = mean.iter().zip(&own.mean).map(|(m, o)| m - o).collect();
        let moved = |v: &[f64]| v.iter().zip(&shift).map(|(x, s)| x + s).collect::<Vec<_>>();
        series.push(SalesSeries {
            level,
            region,
            channel,
            category,
            forecast: Forecast {
                method: own.method.clone(),
                lower_80: moved(&own.lower_80),
                upper_80: moved(&own.upper_80),
                lower_95: moved(&own.lower_95),
                upper_95: moved(&own.upper_95),
                mean,
            },
        });
    }
    Ok(SalesRun {
        first_month: first + Months::new(length as u32),
        history_months: length,
        backtests,
        chosen: chosen.to_string(),
        series,
    })
}
