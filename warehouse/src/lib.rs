//! The warehouse core of Tributary.
//!
//! Every front end (CLI, HTTP, PostgreSQL wire, scheduler) calls into this crate, so they all see the
//! same tables and give the same answers: the data directory's layout ([`layout`]), Delta tables
//! ([`store`]), the canonical entities ([`entity`]), queries under limits ([`engine`]), one customer
//! across CRM and ERP ([`identity`]), the conformed `core` facts and the 7P `marts` built by SQL in
//! `warehouse/sql/` ([`refresh`], [`calendar`]), one customer's 7P profile ([`profile`]), and the
//! semantic layer of named measures and dimensions answered from rollups ([`semantic`]).
//!
//! ```
//! use tributary_warehouse::layout::{DataDir, Layer};
//! let dir = DataDir::new("/var/lib/tributary");
//! assert_eq!(dir.landing(), std::path::Path::new("/var/lib/tributary/landing"));
//! assert!(dir.layer(Layer::Marts).ends_with("tables/marts"));
//! ```

pub mod access;
pub mod calendar;
mod compact_views;
mod delta_scan;
pub mod eager_aggregation;
pub mod engine;
pub mod entity;
pub mod functions;
pub mod identity;
pub mod layout;
pub mod limits;
mod memory_pool;
mod narrow_scan;
pub mod partial_aggregate;
pub mod planner_options;
pub mod profile;
pub mod query_log;
pub mod refresh;
pub mod result_cache;
pub mod self_join;
pub mod semantic;
mod short_text_filter;
pub mod store;
