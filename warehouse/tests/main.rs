//! Integration tests of the warehouse crate, on real Delta tables in temporary data directories.

mod identity;
mod marts;
mod semantic;
