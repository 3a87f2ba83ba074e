//! Where rows come from: one module per kind of source.
//!
//! - [`file`]: the file formats (CSV, whitespace, fixed width, NDJSON, Parquet; gzip; encodings);
//! - [`landing`]: a folder of files, scanned or watched;
//! - [`push`]: bodies pushed over HTTP (`POST /api/v1/ingest/{pipeline}`);
//! - [`database`]: incremental pulls from PostgreSQL and MariaDB/MySQL.

pub mod database;
pub mod file;
pub mod landing;
pub mod push;
