//! Integration tests of the ingest crate, one module per area.

mod chunks;
mod push;
mod sample_company;
