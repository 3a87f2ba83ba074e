//! Models and forecasts for Tributary: point-in-time features from the warehouse, churn and demand
//! models on linfa, sales and demand forecasts, lifetime value, and their honest evaluation.
//!
//! Nothing is implemented here yet: the models issue builds this crate on top of the warehouse's
//! catalog. The crate exists now so that the workspace has its final shape and the dependency
//! direction (api -> models -> warehouse) is fixed from the start.
