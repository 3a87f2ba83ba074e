//! Forecasting any series an analyst brings (`tributary forecast --sql`): rows of date, value and
//! optionally a series name; the frequency (daily, weekly, monthly, quarterly) is read from the
//! dates, the season follows from it unless given, AutoETS is judged against the seasonal naive
//! forecast on a held-out tail, and the better of the two forecasts the horizon.

use std::collections::BTreeMap;

use chrono::{Days, Months, NaiveDate};
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::ModelError;
use crate::design::keys;
use crate::forecast::{Forecast, ets_forecast, seasonal_naive};
use crate::metrics::{coverage, mase, smape};

/// How often a series has a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every day.
    Daily,
    /// Every week.
    Weekly,
    /// Every month.
    Monthly,
    /// Every quarter.
    Quarterly,
}

impl Frequency {
    /// From the median gap between consecutive dates.
    fn from_gap(days: i64) -> Self {
        match days {
            ..=3 => Self::Daily,
            4..=10 => Self::Weekly,
            11..=45 => Self::Monthly,
            _ => Self::Quarterly,
        }
    }

    /// The season length in periods (a week of days, a year otherwise).
    pub fn season(self) -> usize {
        match self {
            Self::Daily => 7,
            Self::Weekly => 52,
            Self::Monthly => 12,
            Self::Quarterly => 4,
        }
    }

    fn next(self, date: NaiveDate, steps: u32) -> NaiveDate {
        match self {
            Self::Daily => date + Days::new(u64::from(steps)),
            Self::Weekly => date + Days::new(7 * u64::from(steps)),
            Self::Monthly => date + Months::new(steps),
            Self::Quarterly => date + Months::new(3 * steps),
        }
    }
}

/// Accuracy on the held-out tail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Holdout {
    /// Periods held out.
    pub periods: usize,
    /// The method's MASE.
    pub mase: Option<f64>,
    /// The method's sMAPE (percent).
    pub smape: f64,
    /// Share of actuals inside the 80% interval.
    pub coverage_80: f64,
    /// Share of actuals inside the 95% interval.
    pub coverage_95: f64,
    /// The seasonal naive baseline's MASE.
    pub baseline_mase: Option<f64>,
    /// Whether the method beat the baseline (else the baseline forecasts).
    pub beats_baseline: bool,
}

/// One forecast step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    /// Period date.
    pub date: NaiveDate,
    /// Point forecast.
    pub forecast: f64,
    /// 80% interval.
    pub lower_80: f64,
    /// 80% interval.
    pub upper_80: f64,
    /// 95% interval.
    pub lower_95: f64,
    /// 95% interval.
    pub upper_95: f64,
}

/// One series' result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesForecast {
    /// Series name (empty for a single series).
    pub series: String,
    /// Frequency read from the dates.
    pub frequency: Frequency,
    /// Season length used.
    pub season: usize,
    /// Observations.
    pub observations: usize,
    /// Method that made the forecast.
    pub method: String,
    /// Held-out accuracy, when a holdout was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// The forecast.
    pub forecast: Vec<Step>,
}

/// Forecast every series in `batches`.
pub fn forecast_query(
    batches: &[RecordBatch],
    date: &str,
    value: &str,
    series: Option<&str>,
    horizon: usize,
    season: Option<usize>,
    holdout: Option<usize>,
) -> Result<Vec<SeriesForecast>, ModelError> {
    let dates = keys(batches, date)?;
    let values = keys(batches, value)?;
    let names = match series {
        Some(column) => keys(batches, column)?,
        None => vec![String::new(); dates.len()],
    };
    let mut grouped: BTreeMap<String, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for (row, ((d, v), name)) in dates.iter().zip(&values).zip(names).enumerate() {
        let day = d
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                ModelError::Forecast(format!(
                    "row {}: column {date} holds {d:?}, which is not a date",
                    row + 1
                ))
            })?;
        let number: f64 = v.parse().map_err(|_| {
            ModelError::Forecast(format!(
                "row {}: column {value} holds {v:?}, which is not a number",
                row + 1
            ))
        })?;
        grouped.entry(name).or_default().push((day, number));
    }
    let mut out = Vec::new();
    for (name, mut points) in grouped {
        points.sort_by_key(|(d, _)| *d);
        if points.len() < 4 {
            return Err(ModelError::Forecast(format!(
                "series {name:?} has {} values; a forecast needs at least 4",
                points.len()
            )));
        }
        let mut gaps: Vec<i64> = points.windows(2).map(|w| (w[1].0 - w[0].0).num_days()).collect();
        gaps.sort_unstable();
        let frequency = Frequency::from_gap(gaps[gaps.len() / 2]);
        let m = season.unwrap_or(frequency.season());
        let y: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        let mut method = "auto_ets";
        let holdout_result = match holdout {
            Some(k) if k > 0 && k < y.len() => {
                let (fit, tail) = y.split_at(y.len() - k);
                let scale_season = if fit.len() > m { m } else { 1 };
                let model = ets_forecast(fit, m, k);
                let baseline = seasonal_naive(fit, m, k);
                let model_mase = mase(fit, tail, &model.mean, scale_season);
                let baseline_mase = mase(fit, tail, &baseline.mean, scale_season);
                let beats = match (model_mase, baseline_mase) {
                    (Some(a), Some(b)) => a <= b,
                    _ => true,
                };
                let judged: &Forecast = if beats { &model } else { &baseline };
                if !beats {
                    method = "seasonal_naive";
                }
                Some(Holdout {
                    periods: k,
                    mase: mase(fit, tail, &judged.mean, scale_season),
                    smape: smape(tail, &judged.mean),
                    coverage_80: coverage(tail, &judged.lower_80, &judged.upper_80),
                    coverage_95: coverage(tail, &judged.lower_95, &judged.upper_95),
                    baseline_mase,
                    beats_baseline: beats,
                })
            }
            Some(k) => {
                return Err(ModelError::Forecast(format!(
                    "series {name:?} has {} values; a holdout of {k} leaves nothing to fit on",
                    y.len()
                )));
            }
            None => None,
        };
        let forecast = match method {
            "auto_ets" => ets_forecast(&y, m, horizon),
            _ => seasonal_naive(&y, m, horizon),
        };
        let last = points.last().expect("at least 4").0;
        let steps = (0..horizon)
            .map(|h| Step {
                date: frequency.next(last, h as u32 + 1),
                forecast: forecast.mean[h],
                lower_80: forecast.lower_80[h],
                upper_80: forecast.upper_80[h],
                lower_95: forecast.lower_95[h],
                upper_95: forecast.upper_95[h],
            })
            .collect();
        out.push(SeriesForecast {
            series: name,
            frequency,
            season: m,
            observations: y.len(),
            method: forecast.method.clone(),
            holdout: holdout_result,
            forecast: steps,
        });
    }
    Ok(out)
}
