//! Ingest for Tributary: sources (files, HTTP pushes, database pulls), mapping of source columns
//! onto the canonical entities, validation, quarantine, and writing Delta tables.
//!
//! It also holds the [`sample_company`] generator, which plays the part of a real CRM and ERP: it
//! writes their exports, in their own shapes, for the demo, the tests and the benchmarks.
//!
//! ```no_run
//! use tributary_ingest::sample_company::{SampleOptions, generate};
//! let options = SampleOptions { customers: 1_000, ..SampleOptions::default() };
//! let manifest = generate(&options, std::path::Path::new("landing"), |_| {}).unwrap();
//! println!("{} order lines", manifest.rows("erp/sales_order_lines.csv").unwrap());
//! ```

/// The canonical entities live in the warehouse (they are its conformed schema); re-exported here
/// because every mapping names them.
pub use tributary_warehouse::entity;

pub mod batch;
pub mod convert;
mod fingerprint;
pub mod pipeline;
pub mod run;
pub mod sample_company;
pub mod source;
