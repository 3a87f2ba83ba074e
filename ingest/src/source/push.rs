//! Bodies pushed over HTTP, for CRM webhooks: `POST /api/v1/ingest/{pipeline}` with NDJSON or CSV.
//! The server (serving issue) hands the body here; it goes through the same batch as a file, named
//! `push:<content hash>` in lineage, so a retried delivery of the same body is stored once.

use std::path::PathBuf;

use crate::pipeline::{FormatKind, FormatSpec};

/// The body's format from its Content-Type, or the pipeline's when it names none we know.
pub fn format_for_content_type(content_type: Option<&str>, pipeline_format: &FormatSpec) -> FormatSpec {
    let mut format = pipeline_format.clone();
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/json") => {
            format.kind = Some(FormatKind::Ndjson);
        }
        Some("text/csv") => {
            format.kind = Some(FormatKind::Csv);
        }
        Some("application/vnd.apache.parquet" | "application/x-parquet") => {
            format.kind = Some(FormatKind::Parquet);
        }
        _ => {}
    }
    format.gzip = Some(false);
    format
}

/// The name a pushed body carries in lineage and errors.
pub fn push_name(content_hash: &str) -> PathBuf {
    PathBuf::from(format!("push:{}", &content_hash[..16.min(content_hash.len())]))
}
