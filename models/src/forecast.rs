//! Forecasting one series: the seasonal naive baseline, exponential smoothing (ETS with additive
//! errors: level, optional additive or damped trend, optional additive season) fitted by least
//! squares and chosen by AICc as statsforecast's AutoETS does, prediction intervals, and
//! rolling-origin backtests scored by MASE, sMAPE and interval coverage.

use serde::{Deserialize, Serialize};

use crate::metrics::{coverage, mase, smape};
use crate::optimize::minimise;

/// Standard normal quantiles for the two interval levels.
const Z80: f64 = 1.281_551_565_545;
const Z95: f64 = 1.959_963_984_540;

/// A point forecast with 80% and 95% intervals, one value per step ahead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Forecast {
    /// The method that made it.
    pub method: String,
    /// Point forecasts.
    pub mean: Vec<f64>,
    /// 80% interval, lower bounds.
    pub lower_80: Vec<f64>,
    /// 80% interval, upper bounds.
    pub upper_80: Vec<f64>,
    /// 95% interval, lower bounds.
    pub lower_95: Vec<f64>,
    /// 95% interval, upper bounds.
    pub upper_95: Vec<f64>,
}

impl Forecast {
    /// Point forecasts with normal intervals of standard deviation `sd[h]`.
    pub fn normal(method: impl Into<String>, mean: Vec<f64>, sd: &[f64]) -> Self {
        let bound = |z: f64, sign: f64| mean.iter().zip(sd).map(|(m, s)| m + sign * z * s).collect();
        Self {
            method: method.into(),
            lower_80: bound(Z80, -1.0),
            upper_80: bound(Z80, 1.0),
            lower_95: bound(Z95, -1.0),
            upper_95: bound(Z95, 1.0),
            mean,
        }
    }

    /// Clip every value at `floor` (demand cannot be negative).
    pub fn floor(mut self, floor: f64) -> Self {
        for v in [
            &mut self.mean,
            &mut self.lower_80,
            &mut self.upper_80,
            &mut self.lower_95,
            &mut self.upper_95,
        ] {
            v.iter_mut().for_each(|x| *x = x.max(floor));
        }
        self
    }
}

/// The seasonal naive forecast: each step repeats the value one season earlier, with Hyndman's
/// intervals (the residual spread grows with the number of whole seasons ahead).
pub fn seasonal_naive(history: &[f64], season: usize, horizon: usize) -> Forecast {
    let m = if history.len() > season { season.max(1) } else { 1 };
    let n = history.len();
    if n == 0 {
        return Forecast::normal("seasonal_naive", vec![0.0; horizon], &vec![0.0; horizon]);
    }
    let mean: Vec<f64> = (0..horizon)
        .map(|h| if n >= m { history[n - m + h % m] } else { history[n - 1] })
        .collect();
    let residuals: Vec<f64> = history.windows(m + 1).map(|w| w[m] - w[0]).collect();
    let sigma = if residuals.is_empty() {
        0.0
    } else {
        (residuals.iter().map(|r| r * r).sum::<f64>() / residuals.len() as f64).sqrt()
    };
    let sd: Vec<f64> = (0..horizon).map(|h| sigma * ((h / m) as f64 + 1.0).sqrt()).collect();
    Forecast::normal(if m > 1 { "seasonal_naive" } else { "naive" }, mean, &sd)
}

/// Trend component of an ETS model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// No trend.
    None,
    /// Additive (linear) trend.
    Additive,
    /// Additive trend damped towards flat.
    Damped,
}

/// A fitted ETS model with additive errors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ets {
    /// Trend component.
    pub trend: Trend,
    /// Season length (1 = no season).
    pub season: usize,
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Season smoothing.
    pub gamma: f64,
    /// Damping.
    pub phi: f64,
    /// Final level.
    pub level: f64,
    /// Final slope.
    pub slope: f64,
    /// Final seasonal states, oldest first (the next step uses the first).
    pub seasonal: Vec<f64>,
    /// Residual variance.
    pub sigma2: f64,
    /// Corrected Akaike information criterion.
    pub aicc: f64,
}

/// Parameters mapped into their admissible region: 0 < alpha < 1, 0 < beta < alpha,
/// 0 < gamma < 1 - alpha, 0.8 <= phi <= 0.98.
fn smoothing(p: &[f64], trend: Trend, seasonal: bool) -> (f64, f64, f64, f64) {
    let logistic = |x: f64| 1.0 / (1.0 + (-x).exp());
    let alpha = 1e-4 + (1.0 - 2e-4) * logistic(p[0]);
    let beta = if trend == Trend::None {
        0.0
    } else {
        alpha * logistic(p[1])
    };
    let gamma = if seasonal { (1.0 - alpha) * logistic(p[2]) } else { 0.0 };
    let phi = match trend {
        Trend::Damped => 0.8 + 0.18 * logistic(p[3]),
        Trend::Additive => 1.0,
        Trend::None => 0.0,
    };
    (alpha, beta, gamma, phi)
}

/// Run the recursions from the initial states; returns the sum of squared one-step errors and
/// the final states.
fn filter(
    y: &[f64],
    (alpha, beta, gamma, phi): (f64, f64, f64, f64),
    mut level: f64,
    mut slope: f64,
    initial_season: &[f64],
) -> (f64, f64, f64, Vec<f64>) {
    let mut season = initial_season.to_vec();
    let m = season.len();
    let mut sse = 0.0;
    for (t, &value) in y.iter().enumerate() {
        let s = if m > 0 { season[t % m] } else { 0.0 };
        let predicted = level + phi * slope + s;
        let error = value - predicted;
        sse += error * error;
        let new_level = level + phi * slope + alpha * error;
        slope = phi * slope + beta * error;
        level = new_level;
        if m > 0 {
            season[t % m] = s + gamma * error;
        }
    }
    // Rotate so that the next step's state comes first.
    if m > 0 {
        season.rotate_left(y.len() % m);
    }
    (sse, level, slope, season)
}

/// Fit one ETS form by least squares over the smoothing parameters and the initial level and
/// slope (the initial season comes from the first two seasons' averages, centred). `None` when
/// the series is too short for the form.
pub fn fit_ets(y: &[f64], trend: Trend, season: usize) -> Option<Ets> {
    let n = y.len();
    let seasonal = season > 1;
    let m = if seasonal { season } else { 0 };
    let states = 1 + usize::from(trend != Trend::None) + m.saturating_sub(1);
    let parameters =
        1 + usize::from(trend != Trend::None) + usize::from(seasonal) + usize::from(trend == Trend::Damped);
    let k = states + parameters + 1;
    if n < k + 3 || (seasonal && n < 2 * m) {
        return None;
    }
    let initial_season: Vec<f64> = if seasonal {
        let cycles = (n / m).min(2);
        let means: Vec<f64> = (0..cycles)
            .map(|c| y[c * m..(c + 1) * m].iter().sum::<f64>() / m as f64)
            .collect();
        let mut s: Vec<f64> = (0..m)
            .map(|i| (0..cycles).map(|c| y[c * m + i] - means[c]).sum::<f64>() / cycles as f64)
            .collect();
        let centre = s.iter().sum::<f64>() / m as f64;
        s.iter_mut().for_each(|v| *v -= centre);
        s
    } else {
        Vec::new()
    };
    let first = &y[..n.min(m.max(4))];
    let level0 = first.iter().sum::<f64>() / first.len() as f64;
    let slope0 = if trend != Trend::None && n >= 2 * m.max(2) {
        let w = m.max(2);
        (y[w..2 * w].iter().sum::<f64>() - y[..w].iter().sum::<f64>()) / (w * w) as f64
    } else {
        0.0
    };
    let scale = y.iter().map(|v| v.abs()).sum::<f64>() / n as f64 + 1e-9;
    // Initial states are searched relative to the series' scale, so one step size suits all.
    let objective = |p: &[f64]| {
        let params = smoothing(p, trend, seasonal);
        filter(y, params, p[4] * scale, p[5] * scale, &initial_season).0
    };
    let start = [-1.0, -1.0, -1.0, 1.0, level0 / scale, slope0 / scale];
    let best = minimise(objective, &start, 0.5, 1e-10, 4000);
    let params = smoothing(&best.point, trend, seasonal);
    let (sse, level, slope, seasonal_states) =
        filter(y, params, best.point[4] * scale, best.point[5] * scale, &initial_season);
    let nf = n as f64;
    let kf = k as f64;
    let log_likelihood = nf * (sse.max(1e-12) / nf).ln();
    let aicc = log_likelihood + 2.0 * kf + 2.0 * kf * (kf + 1.0) / (nf - kf - 1.0).max(1.0);
    Some(Ets {
        trend,
        season: season.max(1),
        alpha: params.0,
        beta: params.1,
        gamma: params.2,
        phi: params.3,
        level,
        slope,
        seasonal: seasonal_states,
        sigma2: sse / (nf - parameters as f64).max(1.0),
        aicc,
    })
}

/// The ETS form with the lowest AICc among no, additive and damped trend, each with and without
/// the season (when two seasons of history exist).
pub fn auto_ets(y: &[f64], season: usize) -> Option<Ets> {
    let mut forms = vec![(Trend::None, 1), (Trend::Additive, 1), (Trend::Damped, 1)];
    if season > 1 {
        forms.extend([
            (Trend::None, season),
            (Trend::Additive, season),
            (Trend::Damped, season),
        ]);
    }
    forms
        .into_iter()
        .filter_map(|(trend, m)| fit_ets(y, trend, m))
        .min_by(|a, b| a.aicc.total_cmp(&b.aicc))
}

impl Ets {
    /// The form's name in Hyndman's notation, e.g. `ETS(A,Ad,A)`.
    pub fn name(&self) -> String {
        let trend = match self.trend {
            Trend::None => "N",
            Trend::Additive => "A",
            Trend::Damped => "Ad",
        };
        let season = if self.season > 1 { "A" } else { "N" };
        format!("ETS(A,{trend},{season})")
    }

    /// Forecast `horizon` steps, with the analytic variance of additive-error ETS:
    /// var(h) = sigma^2 (1 + sum_{j<h} c_j^2), c_j = alpha + beta phi_j + gamma [j mod m = 0].
    pub fn forecast(&self, horizon: usize) -> Forecast {
        let m = self.seasonal.len();
        let mut mean = Vec::with_capacity(horizon);
        let mut sd = Vec::with_capacity(horizon);
        let mut damped_sum = 0.0;
        let mut variance_sum = 0.0;
        for h in 1..=horizon {
            damped_sum += match self.trend {
                Trend::None => 0.0,
                Trend::Additive => 1.0,
                Trend::Damped => self.phi.powi(h as i32),
            };
            let s = if m > 0 { self.seasonal[(h - 1) % m] } else { 0.0 };
            mean.push(self.level + damped_sum * self.slope + s);
            sd.push((self.sigma2 * (1.0 + variance_sum)).sqrt());
            // c_h for the next step's variance.
            let season_term = if m > 0 && h % m == 0 { self.gamma } else { 0.0 };
            let c = self.alpha + self.beta * damped_sum + season_term;
            variance_sum += c * c;
        }
        Forecast::normal(self.name(), mean, &sd)
    }
}

/// Forecast with AutoETS, falling back to the seasonal naive forecast when the series is too
/// short to fit.
pub fn ets_forecast(history: &[f64], season: usize, horizon: usize) -> Forecast {
    match auto_ets(history, season) {
        Some(model) => model.forecast(horizon),
        None => seasonal_naive(history, season, horizon),
    }
}

/// Accuracy of a method over rolling origins.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Backtest {
    /// Method name.
    pub method: String,
    /// Origins (folds) evaluated.
    pub folds: usize,
    /// Mean MASE over folds.
    pub mase: Option<f64>,
    /// Mean sMAPE over folds (percent).
    pub smape: f64,
    /// Share of actuals inside the 80% interval.
    pub coverage_80: f64,
    /// Share of actuals inside the 95% interval.
    pub coverage_95: f64,
}

/// Evaluate `method` (history, horizon -> forecast) on `folds` origins, the last one `horizon`
/// steps before the end and each earlier one `horizon` steps before the next. MASE scales by the
/// seasonal naive error with period `season` on each fold's own history.
pub fn backtest(
    name: &str,
    y: &[f64],
    season: usize,
    horizon: usize,
    folds: usize,
    method: impl Fn(&[f64], usize) -> Forecast,
) -> Backtest {
    let mut mases = Vec::new();
    let mut smapes = Vec::new();
    let (mut inside_80, mut inside_95, mut points) = (0.0, 0.0, 0usize);
    let mut used = 0;
    for fold in (1..=folds).rev() {
        let Some(origin) = y.len().checked_sub(fold * horizon) else {
            continue;
        };
        if origin < 2 {
            continue;
        }
        let history = &y[..origin];
        let actual = &y[origin..(origin + horizon).min(y.len())];
        let forecast = method(history, actual.len());
        let scale_season = if history.len() > season { season } else { 1 };
        if let Some(m) = mase(history, actual, &forecast.mean, scale_season) {
            mases.push(m);
        }
        smapes.push(smape(actual, &forecast.mean));
        inside_80 += coverage(actual, &forecast.lower_80, &forecast.upper_80) * actual.len() as f64;
        inside_95 += coverage(actual, &forecast.lower_95, &forecast.upper_95) * actual.len() as f64;
        points += actual.len();
        used += 1;
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Backtest {
        method: name.to_string(),
        folds: used,
        mase: mean(&mases),
        smape: mean(&smapes).unwrap_or(0.0),
        coverage_80: inside_80 / points.max(1) as f64,
        coverage_95: inside_95 / points.max(1) as f64,
    }
}
