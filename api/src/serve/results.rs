//! Query results on the wire: JSON (rows plus schema), NDJSON, CSV, Arrow IPC stream or Parquet,
//! chosen by the Accept header, written batch by batch as the rows come so a large result never
//! sits whole in memory.
//!
//! Errors after the first bytes have gone (the row cap, the timeout): JSON ends its document with
//! an `"error"` member, NDJSON with an `{"error": ...}` line; CSV, Arrow and Parquet have no place
//! for one, so the response is cut off and the client sees a broken body, never a short result
//! that looks whole.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tributary_warehouse::engine::{QueryError, QueryStream};

use super::error::ApiError;

/// A result format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: `{"schema": [...], "rows": [{...}], "row_count": n}`.
    Json,
    /// `application/x-ndjson`: one object per row.
    Ndjson,
    /// `text/csv` with a header row.
    Csv,
    /// `application/vnd.apache.arrow.stream`.
    Arrow,
    /// `application/vnd.apache.parquet`.
    Parquet,
}

impl Format {
    /// The first format the Accept header names that we can write; JSON when it names none.
    pub fn from_accept(accept: Option<&str>) -> Result<Self, ApiError> {
        let Some(accept) = accept else {
            return Ok(Format::Json);
        };
        for item in accept.split(',') {
            let essence = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let format = match essence.as_str() {
                "application/json" | "*/*" | "application/*" => Format::Json,
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Format::Ndjson,
                "text/csv" | "text/*" => Format::Csv,
                "application/vnd.apache.arrow.stream" => Format::Arrow,
                "application/vnd.apache.parquet" | "application/x-parquet" => Format::Parquet,
                _ => continue,
            };
            return Ok(format);
        }
        Err(ApiError::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!(
                "cannot answer in {accept:?}: ask for application/json, application/x-ndjson, text/csv, \
                 application/vnd.apache.arrow.stream or application/vnd.apache.parquet"
            ),
        ))
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// A writer that hands out what was written to it since the last call.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("never poisoned"))
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("never poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Encoder {
    Json { rows: u64 },
    Ndjson,
    Csv { header: bool },
    Arrow(datafusion::arrow::ipc::writer::StreamWriter<Shared>, Shared),
    Parquet(Option<datafusion::parquet::arrow::ArrowWriter<Shared>>, Shared),
}

type EncodeResult = Result<Vec<u8>, String>;

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> Result<(Self, Vec<u8>), String> {
        Ok(match format {
            Format::Json => {
                let fields: Vec<serde_json::Value> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
                    .collect();
                let head = format!("{{\"schema\":{},\"rows\":[", serde_json::Value::Array(fields));
                (Encoder::Json { rows: 0 }, head.into_bytes())
            }
            Format::Ndjson => (Encoder::Ndjson, Vec::new()),
            Format::Csv => (Encoder::Csv { header: true }, Vec::new()),
            Format::Arrow => {
                let out = Shared::default();
                let writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(out.clone(), schema)
                    .map_err(|e| e.to_string())?;
                let head = out.take();
                (Encoder::Arrow(writer, out), head)
            }
            Format::Parquet => {
                let out = Shared::default();
                let writer = datafusion::parquet::arrow::ArrowWriter::try_new(out.clone(), schema.clone(), None)
                    .map_err(|e| e.to_string())?;
                (Encoder::Parquet(Some(writer), out), Vec::new())
            }
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> EncodeResult {
        match self {
            Encoder::Json { rows } => {
                let lines = ndjson(batch)?;
                let mut out = Vec::with_capacity(lines.len() + 8);
                for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    if *rows > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(line);
                    *rows += 1;
                }
                Ok(out)
            }
            Encoder::Ndjson => ndjson(batch),
            Encoder::Csv { header } => {
                let mut out = Vec::new();
                {
                    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(*header)
                        .build(&mut out);
                    writer.write(batch).map_err(|e| e.to_string())?;
                }
                *header = false;
                Ok(out)
            }
            Encoder::Arrow(writer, out) => {
                writer.write(batch).map_err(|e| e.to_string())?;
                Ok(out.take())
            }
            Encoder::Parquet(writer, out) => {
                let writer = writer.as_mut().expect("open until finished");
                writer.write(batch).map_err(|e| e.to_string())?;
                // A row group per 64k rows or so keeps memory flat and lets bytes flow.
                if writer.in_progress_rows() >= 65_536 {
                    writer.flush().map_err(|e| e.to_string())?;
                }
                Ok(out.take())
            }
        }
    }

    fn finish(&mut self, row_count: u64) -> EncodeResult {
        match self {
            Encoder::Json { .. } => Ok(format!("],\"row_count\":{row_count}}}").into_bytes()),
            Encoder::Ndjson | Encoder::Csv { .. } => Ok(Vec::new()),
            Encoder::Arrow(writer, out) => {
                writer.finish().map_err(|e| e.to_string())?;
                Ok(out.take())
            }
            Encoder::Parquet(writer, out) => {
                if let Some(writer) = writer.take() {
                    writer.close().map_err(|e| e.to_string())?;
                }
                Ok(out.take())
            }
        }
    }

    /// The bytes that report an error mid-stream, where the format has a place for one.
    fn error(&self, error: &ApiError, row_count: u64) -> Option<Vec<u8>> {
        match self {
            Encoder::Json { .. } => {
                Some(format!("],\"row_count\":{row_count},\"error\":{}}}", error.body()["error"]).into_bytes())
            }
            Encoder::Ndjson => Some(format!("{}\n", error.body()).into_bytes()),
            _ => None,
        }
    }
}

fn ndjson(batch: &RecordBatch) -> EncodeResult {
    let mut out = Vec::new();
    {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut out);
        writer.write(batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The response for a running query. The first batch is awaited before the status is chosen, so
/// errors that come early (most of them) get their proper status and JSON body.
pub async fn respond(mut rows: QueryStream, format: Format) -> Result<Response, ApiError> {
    let schema = rows.schema();
    let first = match rows.next().await {
        Some(Err(error)) => return Err(error.into()),
        Some(Ok(batch)) => Some(batch),
        None => None,
    };
    let (encoder, head) = Encoder::new(format, &schema).map_err(ApiError::internal)?;
    let row_count = rows.rows();
    let state = Streaming {
        rows,
        encoder,
        pending: first,
        head: Some(head),
        done: false,
        row_count,
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.step().await?;
        Some((chunk, state))
    });
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    Ok(response)
}

struct Streaming {
    rows: QueryStream,
    encoder: Encoder,
    pending: Option<RecordBatch>,
    head: Option<Vec<u8>>,
    done: bool,
    row_count: u64,
}

impl Streaming {
    /// The next chunk of the body; `None` once it is complete.
    async fn step(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        let mut chunk = self.head.take().unwrap_or_default();
        loop {
            let batch = match self.pending.take() {
                Some(batch) => Some(Ok(batch)),
                None => self.rows.next().await,
            };
            self.row_count = self.rows.rows();
            let encoded = match batch {
                Some(Ok(batch)) => self.encoder.batch(&batch),
                None => {
                    self.done = true;
                    self.encoder.finish(self.row_count)
                }
                Some(Err(error)) => return Some(self.fail(chunk, error)),
            };
            match encoded {
                Ok(bytes) => chunk.extend_from_slice(&bytes),
                Err(message) => return Some(self.fail(chunk, QueryError::Execution(message))),
            }
            // Send when there is something worth a write, or at the end.
            if self.done || chunk.len() >= 16 * 1024 {
                return Some(Ok(Bytes::from(chunk)));
            }
        }
    }

    fn fail(&mut self, mut chunk: Vec<u8>, error: QueryError) -> Result<Bytes, std::io::Error> {
        self.done = true;
        let error = ApiError::from(error);
        tracing::warn!("query failed after its first rows were sent: {error}");
        match self.encoder.error(&error, self.row_count) {
            Some(tail) => {
                chunk.extend_from_slice(&tail);
                Ok(Bytes::from(chunk))
            }
            None => Err(std::io::Error::other(error.to_string())),
        }
    }
}
