//! Models and forecasts for Tributary, on top of the warehouse:
//! - [`churn`]: point-in-time churn features from `core`, time-based splits, logistic regression
//!   and a random forest on linfa and gradient-boosted trees ([`boosting`], [`classifier`]),
//!   chosen on validation and scored with reasons;
//! - [`lifetime`]: BG/NBD and Gamma-Gamma by maximum likelihood ([`optimize`]), P(alive),
//!   expected purchases and discounted lifetime value;
//! - [`forecast`]: seasonal naive and exponential smoothing with intervals, rolling-origin
//!   backtests; [`demand`] and [`sales`] forecasts on the warehouse;
//! - [`series`]: any series from a query, forecast and judged on a held-out tail;
//! - [`metrics`]: ROC AUC, PR AUC, Brier, lift, MASE, sMAPE, coverage;
//! - [`design`]: query results to feature matrices; [`registry`]: versioned model artefacts;
//! - [`jobs`]: each job as one function that writes its `ml` table and records the run.

pub mod boosting;
pub mod churn;
pub mod classifier;
pub mod demand;
pub mod design;
pub mod forecast;
pub mod jobs;
pub mod lifetime;
pub mod metrics;
pub mod optimize;
pub mod registry;
pub mod sales;
pub mod series;

use chrono::NaiveDate;

/// Why a model could not be trained, scored or stored.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A query on the warehouse failed.
    #[error("query failed: {0}")]
    Query(String),
    /// The warehouse refused.
    #[error(transparent)]
    Warehouse(#[from] tributary_warehouse::engine::QueryError),
    /// A table could not be read or written.
    #[error(transparent)]
    Store(#[from] tributary_warehouse::store::StoreError),
    /// Rows could not be encoded.
    #[error(transparent)]
    Design(#[from] design::DesignError),
    /// A classifier could not be fitted.
    #[error(transparent)]
    Fit(#[from] classifier::FitError),
    /// A lifetime model could not be fitted.
    #[error(transparent)]
    Lifetime(#[from] lifetime::LifetimeError),
    /// A split is empty.
    #[error("too few rows to train: {train} for training, {validation} for validation, {test} for testing")]
    TooFewRows {
        /// Training rows.
        train: usize,
        /// Validation rows.
        validation: usize,
        /// Test rows.
        test: usize,
    },
    /// The warehouse holds no orders.
    #[error("core.sales_order holds no orders: ingest some first (tributary ingest)")]
    NoOrders,
    /// Not enough history for the splits.
    #[error("orders run from {first} to {as_of}, but training needs at least {needed_days} days of history")]
    ShortHistory {
        /// First order date.
        first: NaiveDate,
        /// Last day of data.
        as_of: NaiveDate,
        /// Days needed.
        needed_days: u32,
    },
    /// A forecast could not be made.
    #[error("{0}")]
    Forecast(String),
    /// A model artefact could not be read or written.
    #[error("model artefact {path}: {message}")]
    Artefact {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}
