//! Integration tests of the ingest crate, one module per area.

mod sample_company;
