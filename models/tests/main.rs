//! Tests of the models crate: metric code against known values, gradient-boosted trees, BG/NBD and Gamma-Gamma against
//! the published CDNOW fits, forecasting methods against series with known answers, and the
//! point-in-time rule of the churn features on a real warehouse.

mod boosting;
mod forecast;
mod lifetime;
mod metrics;
mod point_in_time;
