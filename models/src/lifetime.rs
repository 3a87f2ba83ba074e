//! Customer lifetime value: the BG/NBD model of repeat purchasing (Fader, Hardie and Lee 2005) and
//! the Gamma-Gamma model of spend per order (Fader, Hardie and Lee 2005b), fitted by maximum
//! likelihood on the RFM summary as the lifetimes library defines it (`frequency` = repeat purchase
//! periods, `recency` = time from the first to the last purchase, `T` = time from the first
//! purchase to the cut-off), giving P(alive), expected purchases and discounted lifetime value.

use libm::{exp, lgamma, log};
use serde::{Deserialize, Serialize};

use crate::optimize::minimise;

/// One customer's purchase history summarised at the cut-off, in the model's time unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchases: distinct purchase periods minus one.
    pub frequency: f64,
    /// Time from the first to the last purchase.
    pub recency: f64,
    /// Time from the first purchase to the cut-off.
    pub age: f64,
    /// Mean value of the repeat purchases (0 without any).
    pub monetary: f64,
}

/// Fitted BG/NBD parameters: purchase rates are Gamma(r, alpha), dropout probabilities Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Scale of the purchase-rate distribution (in the time unit).
    pub alpha: f64,
    /// Dropout Beta's first parameter.
    pub a: f64,
    /// Dropout Beta's second parameter.
    pub b: f64,
    /// Log-likelihood at the fit.
    pub log_likelihood: f64,
}

/// Fitted Gamma-Gamma spend parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    /// Shape of the per-transaction spend.
    pub p: f64,
    /// Shape of the spend scale's distribution.
    pub q: f64,
    /// Scale of the spend scale's distribution.
    pub v: f64,
    /// Log-likelihood at the fit.
    pub log_likelihood: f64,
}

/// Why a model could not be fitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LifetimeError {
    /// Nothing to fit on.
    #[error("{model} needs customers with {what}; there are none")]
    NoData {
        /// The model.
        model: &'static str,
        /// What it needs.
        what: &'static str,
    },
    /// The optimiser ended somewhere the likelihood is not finite.
    #[error("{model} did not converge (log-likelihood {log_likelihood})")]
    NoConvergence {
        /// The model.
        model: &'static str,
        /// Where it ended.
        log_likelihood: f64,
    },
}

/// ln(e^x + e^y) without overflow.
fn log_add_exp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    if m == f64::NEG_INFINITY {
        m
    } else {
        m + log(exp(x - m) + exp(y - m))
    }
}

impl BgNbd {
    /// One customer's log-likelihood (the paper's equation 6, in logs).
    fn log_likelihood_of(r: f64, alpha: f64, a: f64, b: f64, s: &Summary) -> f64 {
        let (x, t_x, t) = (s.frequency, s.recency, s.age);
        let a1 = lgamma(r + x) - lgamma(r) + r * log(alpha);
        let a2 = lgamma(a + b) + lgamma(b + x) - lgamma(b) - lgamma(a + b + x);
        let a3 = -(r + x) * log(alpha + t);
        let a4 = if x > 0.0 {
            log(a) - log(b + x - 1.0) - (r + x) * log(alpha + t_x)
        } else {
            f64::NEG_INFINITY
        };
        a1 + a2 + log_add_exp(a3, a4)
    }

    /// Maximum-likelihood fit; parameters are searched on the log scale, so they stay positive.
    pub fn fit(customers: &[Summary]) -> Result<Self, LifetimeError> {
        if customers.is_empty() {
            return Err(LifetimeError::NoData {
                model: "BG/NBD",
                what: "at least one purchase",
            });
        }
        // Scale time so that alpha starts near the data's own unit (the optimiser's steps are
        // relative), then undo the scale on alpha at the end.
        let negative_ll = |p: &[f64]| {
            let (r, alpha, a, b) = (exp(p[0]), exp(p[1]), exp(p[2]), exp(p[3]));
            -customers
                .iter()
                .map(|s| Self::log_likelihood_of(r, alpha, a, b, s))
                .sum::<f64>()
        };
        let mean_age = customers.iter().map(|s| s.age).sum::<f64>() / customers.len() as f64;
        let start = [0.0, log(mean_age.max(1e-6) / 10.0), 0.0, 0.0];
        let best = minimise(negative_ll, &start, 0.5, 1e-12, 20_000);
        if !best.value.is_finite() {
            return Err(LifetimeError::NoConvergence {
                model: "BG/NBD",
                log_likelihood: -best.value,
            });
        }
        let p = &best.point;
        Ok(Self {
            r: exp(p[0]),
            alpha: exp(p[1]),
            a: exp(p[2]),
            b: exp(p[3]),
            log_likelihood: -best.value,
        })
    }

    /// The probability that the customer has not dropped out by the cut-off.
    pub fn p_alive(&self, s: &Summary) -> f64 {
        if s.frequency == 0.0 {
            return 1.0;
        }
        let odds = self.a / (self.b + s.frequency - 1.0)
            * exp((self.r + s.frequency) * (log(self.alpha + s.age) - log(self.alpha + s.recency)));
        1.0 / (1.0 + odds)
    }

    /// Expected purchases in the next `horizon` time units, given the customer's history (the
    /// paper's equation 10).
    pub fn expected_purchases(&self, s: &Summary, horizon: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let (x, t_x, t) = (s.frequency, s.recency, s.age);
        if horizon <= 0.0 {
            return 0.0;
        }
        let z = horizon / (alpha + t + horizon);
        let hyper = hypergeometric_2f1(r + x, b + x, a + b + x - 1.0, z);
        let ratio = exp((r + x) * (log(alpha + t) - log(alpha + t + horizon)));
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - ratio * hyper);
        let denominator = if x > 0.0 {
            1.0 + a / (b + x - 1.0) * exp((r + x) * (log(alpha + t) - log(alpha + t_x)))
        } else {
            1.0
        };
        numerator / denominator
    }
}

/// Gauss's hypergeometric function 2F1(a, b; c; z) by its power series, for 0 <= z < 1.
fn hypergeometric_2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 0..100_000 {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-14 * sum.abs() {
            break;
        }
    }
    sum
}

impl GammaGamma {
    /// Maximum-likelihood fit on repeat customers (frequency > 0, monetary > 0), as lifetimes
    /// does; the others carry no information about spend per order.
    pub fn fit(customers: &[Summary]) -> Result<Self, LifetimeError> {
        let repeat: Vec<&Summary> = customers
            .iter()
            .filter(|s| s.frequency > 0.0 && s.monetary > 0.0)
            .collect();
        if repeat.is_empty() {
            return Err(LifetimeError::NoData {
                model: "Gamma-Gamma",
                what: "repeat purchases of positive value",
            });
        }
        let negative_ll = |p: &[f64]| {
            let (pp, q, v) = (exp(p[0]), exp(p[1]), exp(p[2]));
            -repeat
                .iter()
                .map(|s| {
                    let (x, m) = (s.frequency, s.monetary);
                    lgamma(pp * x + q) - lgamma(pp * x) - lgamma(q)
                        + q * log(v)
                        + (pp * x - 1.0) * log(m)
                        + pp * x * log(x)
                        - (pp * x + q) * log(x * m + v)
                })
                .sum::<f64>()
        };
        let mean_spend = repeat.iter().map(|s| s.monetary).sum::<f64>() / repeat.len() as f64;
        let start = [0.0, 0.0, log(mean_spend.max(1e-6))];
        let best = minimise(negative_ll, &start, 0.5, 1e-12, 20_000);
        if !best.value.is_finite() {
            return Err(LifetimeError::NoConvergence {
                model: "Gamma-Gamma",
                log_likelihood: -best.value,
            });
        }
        Ok(Self {
            p: exp(best.point[0]),
            q: exp(best.point[1]),
            v: exp(best.point[2]),
            log_likelihood: -best.value,
        })
    }

    /// Expected value of the customer's future orders, shrinking their own mean towards the
    /// population's as their history gets shorter.
    pub fn expected_spend(&self, s: &Summary) -> f64 {
        let (x, m) = (s.frequency, if s.frequency > 0.0 { s.monetary } else { 0.0 });
        self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
    }
}

/// Discounted lifetime value over `periods` future periods of `period_length` time units each:
/// the expected purchases in each period times the expected spend times the margin, discounted at
/// `discount_rate` per period (lifetimes' `customer_lifetime_value`).
pub fn lifetime_value(
    purchases: &BgNbd,
    spend: &GammaGamma,
    s: &Summary,
    margin: f64,
    periods: u32,
    period_length: f64,
    discount_rate: f64,
) -> f64 {
    let value = spend.expected_spend(s) * margin;
    let mut total = 0.0;
    let mut previous = 0.0;
    for i in 1..=periods {
        let cumulative = purchases.expected_purchases(s, f64::from(i) * period_length);
        total += (cumulative - previous) * value / (1.0 + discount_rate).powi(i as i32);
        previous = cumulative;
    }
    total
}
