//! The warehouse core of Tributary.
//!
//! Every front end (CLI, HTTP, PostgreSQL wire, scheduler) calls into this crate, so they all see the
//! same tables and give the same answers. For now it owns the layout of the data directory; the
//! DataFusion catalog, the conformed `core` schema and the 7P marts arrive on top of it.
//!
//! ```
//! use tributary_warehouse::layout::{DataDir, Layer};
//! let dir = DataDir::new("/var/lib/tributary");
//! assert_eq!(dir.landing(), std::path::Path::new("/var/lib/tributary/landing"));
//! assert!(dir.layer(Layer::Marts).ends_with("tables/marts"));
//! ```

pub mod engine;
pub mod identity;
pub mod layout;
pub mod limits;
pub mod store;
