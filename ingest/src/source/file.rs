//! File formats: delimited text (CSV, `;`, tab), whitespace-separated and fixed-width text, NDJSON
//! and Parquet, optionally gzip-compressed, in UTF-8 or Latin-1.
//!
//! Every format yields the same thing: named text fields per record, with the record's row number
//! (its line in the file for text formats), so that mapping, validation and quarantine are written
//! once. A record that cannot be split into fields (bad UTF-8, wrong field count, invalid JSON, a
//! field over the size limit) is returned as [`Next::Malformed`] and reading goes on; a file that
//! cannot be read at all (missing, empty, corrupt gzip, unreadable Parquet) is a [`SourceError`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use flate2::read::MultiGzDecoder;

use crate::convert::finish_texts_presized;
use crate::pipeline::{Encoding, FormatKind, FormatSpec, delimiter_byte};

/// The default limit on one field's size.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 1 << 20;
/// How much of a malformed row is kept in quarantine.
pub const RAW_ROW_LIMIT: usize = 4096;

/// A file that cannot be read at all. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading failed (including corrupt or truncated gzip).
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong, with the row reached when known.
        message: String,
    },
    /// The file has no header and no rows.
    #[error("{path}: the file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The columns a pipeline needs are not in the file.
    #[error("{path}: row 1: field `{field}` is missing; the header has {found}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        field: String,
        /// What the header does have.
        found: String,
    },
}

/// One record's fields, reused between calls to avoid an allocation per row.
#[derive(Debug, Default)]
pub struct RecordBuf {
    /// Row number: the line in text files (header is line 1), the record index in others.
    pub row: u64,
    /// One text per column, `""` for empty or missing.
    pub fields: Vec<String>,
    /// The chunks' text columns, kept from chunk to chunk: each is left sized as the last chunk
    /// was (see [`finish_texts_presized`]).
    texts: Vec<StringBuilder>,
}

/// What [`RecordReader::next`] found.
#[derive(Debug)]
pub enum Next {
    /// A record is in the buffer.
    Record,
    /// A row that could not be split into fields.
    Malformed(MalformedRow),
    /// No more rows.
    End,
}

/// Records read ahead as one piece, for a converter on another thread: every field as text, one
/// Arrow column per source column (the raw table's columns as they are), and the rows that could
/// not be split into fields.
#[derive(Debug)]
pub struct RecordChunk {
    /// One text column per source column, a value per record.
    pub fields: Vec<ArrayRef>,
    /// Each record's row number.
    pub rows: Vec<u64>,
    /// Rows that could not be split into fields.
    pub malformed: Vec<MalformedRow>,
}

/// A row that could not be split into fields.
#[derive(Debug)]
pub struct MalformedRow {
    /// Its row number.
    pub row: u64,
    /// The row as received (lossy UTF-8, shortened to [`RAW_ROW_LIMIT`] bytes).
    pub raw: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

impl RecordChunk {
    /// Whether the chunk holds no rows at all.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.malformed.is_empty()
    }
}

/// Reads records from one file or body.
pub struct RecordReader {
    name: PathBuf,
    columns: Vec<String>,
    inner: Inner,
    encoding: Encoding,
    max_field: usize,
}

enum Inner {
    Csv {
        reader: csv::Reader<TailRead<Box<dyn Read + Send>>>,
        record: csv::ByteRecord,
        quote: u8,
    },
    Lines {
        reader: Box<dyn BufRead + Send>,
        line: Vec<u8>,
        line_no: u64,
        split: LineSplit,
    },
    Parquet {
        reader: ParquetRecordBatchReader,
        batch: Option<(Vec<StringArray>, usize)>,
        row: u64,
    },
    Rows {
        rows: std::vec::IntoIter<Vec<Option<String>>>,
        row: u64,
    },
}

enum LineSplit {
    Whitespace,
    Fixed(Vec<usize>),
    Json,
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("name", &self.name)
            .field("columns", &self.columns)
            .finish()
    }
}

/// The format a spec resolves to for a file name.
pub fn format_for(spec: &FormatSpec, name: &Path) -> FormatKind {
    if let Some(kind) = spec.kind {
        return kind;
    }
    let lower = name.to_string_lossy().to_ascii_lowercase();
    let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
    if lower.ends_with(".parquet") {
        FormatKind::Parquet
    } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") || lower.ends_with(".json") {
        FormatKind::Ndjson
    } else {
        FormatKind::Csv
    }
}

impl RecordReader {
    /// Open a file on disk.
    pub fn open(path: &Path, spec: &FormatSpec, wanted: &[String]) -> Result<Self, SourceError> {
        let read_err = |e: std::io::Error| SourceError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let file = File::open(path).map_err(read_err)?;
        if file.metadata().map_err(read_err)?.len() == 0 {
            return Err(SourceError::Empty {
                path: path.to_path_buf(),
            });
        }
        if format_for(spec, path) == FormatKind::Parquet {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| SourceError::Read {
                path: path.to_path_buf(),
                message: format!("not a readable Parquet file: {e}"),
            })?;
            return Self::parquet(path, builder, spec);
        }
        Self::from_reader(path, Box::new(file), spec, wanted)
    }

    /// Read from bytes already in memory (an HTTP push body), named `name` in errors and lineage.
    pub fn from_bytes(
        name: &Path,
        body: bytes::Bytes,
        spec: &FormatSpec,
        wanted: &[String],
    ) -> Result<Self, SourceError> {
        if body.is_empty() {
            return Err(SourceError::Empty {
                path: name.to_path_buf(),
            });
        }
        if format_for(spec, name) == FormatKind::Parquet {
            let builder = ParquetRecordBatchReaderBuilder::try_new(body).map_err(|e| SourceError::Read {
                path: name.to_path_buf(),
                message: format!("not a readable Parquet file: {e}"),
            })?;
            return Self::parquet(name, builder, spec);
        }
        Self::from_reader(name, Box::new(std::io::Cursor::new(body)), spec, wanted)
    }

    /// Records already split into text values (a database pull), named `name` in errors and lineage.
    pub fn from_rows(name: &Path, columns: Vec<String>, rows: Vec<Vec<Option<String>>>) -> Self {
        Self {
            name: name.to_path_buf(),
            columns,
            inner: Inner::Rows {
                rows: rows.into_iter(),
                row: 0,
            },
            encoding: Encoding::Utf8,
            max_field: usize::MAX,
        }
    }

    fn parquet<T: datafusion::parquet::file::reader::ChunkReader + 'static>(
        name: &Path,
        builder: ParquetRecordBatchReaderBuilder<T>,
        spec: &FormatSpec,
    ) -> Result<Self, SourceError> {
        let columns = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        let reader = builder.with_batch_size(8192).build().map_err(|e| SourceError::Read {
            path: name.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            name: name.to_path_buf(),
            columns,
            inner: Inner::Parquet {
                reader,
                batch: None,
                row: 0,
            },
            encoding: Encoding::Utf8,
            max_field: spec.max_field_bytes.unwrap_or(DEFAULT_MAX_FIELD_BYTES),
        })
    }

    fn from_reader(
        name: &Path,
        raw: Box<dyn Read + Send>,
        spec: &FormatSpec,
        wanted: &[String],
    ) -> Result<Self, SourceError> {
        let gzip = spec
            .gzip
            .unwrap_or_else(|| name.to_string_lossy().to_ascii_lowercase().ends_with(".gz"));
        let input: Box<dyn Read + Send> = if gzip { Box::new(MultiGzDecoder::new(raw)) } else { raw };
        let encoding = spec.encoding.unwrap_or(Encoding::Utf8);
        let max_field = spec.max_field_bytes.unwrap_or(DEFAULT_MAX_FIELD_BYTES);
        let header = spec.header.unwrap_or(true);
        let kind = format_for(spec, name);
        let mut reader = Self {
            name: name.to_path_buf(),
            columns: spec.columns.clone(),
            inner: match kind {
                FormatKind::Csv => {
                    let quote = spec.quote.as_deref().and_then(delimiter_byte).unwrap_or(b'"');
                    let mut builder = csv::ReaderBuilder::new();
                    builder
                        .has_headers(false)
                        .flexible(true)
                        .delimiter(spec.delimiter.as_deref().and_then(delimiter_byte).unwrap_or(b','))
                        .quote(quote)
                        .buffer_capacity(CSV_BUFFER_BYTES);
                    Inner::Csv {
                        reader: builder.from_reader(TailRead::new(input)),
                        record: csv::ByteRecord::new(),
                        quote,
                    }
                }
                FormatKind::Whitespace | FormatKind::FixedWidth | FormatKind::Ndjson => Inner::Lines {
                    reader: Box::new(BufReader::with_capacity(1 << 16, input)),
                    line: Vec::new(),
                    line_no: 0,
                    split: match kind {
                        FormatKind::Whitespace => LineSplit::Whitespace,
                        FormatKind::FixedWidth => LineSplit::Fixed(spec.widths.clone()),
                        _ => LineSplit::Json,
                    },
                },
                FormatKind::Parquet => unreachable!("Parquet is opened before"),
            },
            encoding,
            max_field,
        };
        if kind == FormatKind::Ndjson {
            reader.columns = reader.json_columns(wanted)?;
        } else if header {
            let names = reader.header_line()?;
            if reader.columns.is_empty() {
                reader.columns = names;
            }
        } else if reader.columns.is_empty() {
            return Err(SourceError::Read {
                path: name.to_path_buf(),
                message: "format.header is false, so format.columns must name the columns".into(),
            });
        }
        Ok(reader)
    }

    /// Column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The file (or push) name used in errors and lineage.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Read up to `rows` records into a chunk; an empty chunk when the input is at its end.
    pub fn next_chunk(&mut self, buf: &mut RecordBuf, rows: usize) -> Result<RecordChunk, SourceError> {
        let width = self.columns.len();
        // Sized as the last chunk was; the first grows as records come: a push of ten rows should
        // not reserve room for thousands.
        let mut fields = std::mem::take(&mut buf.texts);
        fields.resize_with(width, StringBuilder::new);
        let mut numbers = Vec::new();
        let mut malformed = Vec::new();
        // CSV fields go from the record straight into their columns, without a string each.
        let csv = matches!(self.inner, Inner::Csv { .. });
        while csv && numbers.len() < rows {
            let mut row = 0;
            match self.next_csv(&mut row, |i, text| fields[i].append_value(text))? {
                Next::End => break,
                Next::Record => numbers.push(row),
                Next::Malformed(bad) => malformed.push(bad),
            }
        }
        while !csv && numbers.len() < rows {
            match self.next(buf)? {
                Next::End => break,
                Next::Record => {
                    for (builder, field) in fields.iter_mut().zip(&buf.fields) {
                        builder.append_value(field);
                    }
                    numbers.push(buf.row);
                }
                Next::Malformed(row) => malformed.push(row),
            }
        }
        let texts = fields
            .iter_mut()
            .map(|b| Arc::new(finish_texts_presized(b)) as ArrayRef)
            .collect();
        buf.texts = fields;
        Ok(RecordChunk {
            fields: texts,
            rows: numbers,
            malformed,
        })
    }

    /// Read the next CSV record and hand each of its fields, as text, to `field` (column index,
    /// text); a malformed record hands over none. `row` is set to the record's line.
    fn next_csv(&mut self, row: &mut u64, mut field: impl FnMut(usize, &str)) -> Result<Next, SourceError> {
        let width = self.columns.len();
        let Inner::Csv { reader, record, quote } = &mut self.inner else {
            unreachable!("called for CSV input only")
        };
        loop {
            let ok = reader.read_byte_record(record);
            *row = record.position().map_or(0, |p| p.line());
            match ok {
                Ok(true) => {}
                Ok(false) => return Ok(Next::End),
                Err(e) => return Err(self.io_error(*row, e)),
            }
            *row = record_line(reader, record, *quote).unwrap_or(*row);
            let malformed = |field: Option<usize>, reason: String| {
                let joined = record.iter().map(String::from_utf8_lossy).collect::<Vec<_>>().join(",");
                Ok(Next::Malformed(MalformedRow {
                    row: *row,
                    raw: shorten(joined),
                    field: field.map(|i| self.columns[i].clone()),
                    reason,
                }))
            };
            if record.len() != width {
                // A blank line in the middle of a file is not a row.
                if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                    continue;
                }
                return malformed(None, format!("has {} fields, the header has {width}", record.len()));
            }
            if let Some(i) = record.iter().position(|f| f.len() > self.max_field) {
                let length = record.get(i).map_or(0, <[u8]>::len);
                return malformed(
                    Some(i),
                    format!("field is {length} bytes, over the {} byte limit", self.max_field),
                );
            }
            match self.encoding {
                Encoding::Utf8 => {
                    // One check of the whole record, its fields then sliced from it: a call per
                    // field costs more than the check of a short field. A field can still end
                    // inside a character that the next one completes; then each field is checked.
                    let whole = std::str::from_utf8(record.as_slice()).ok();
                    let ranges = (0..width).map(|i| record.range(i).expect("the record has `width` fields"));
                    let sliced = whole.filter(|text| {
                        ranges
                            .clone()
                            .all(|r| text.is_char_boundary(r.start) && text.is_char_boundary(r.end))
                    });
                    match sliced {
                        Some(text) => {
                            for (i, r) in ranges.enumerate() {
                                field(i, &text[r]);
                            }
                        }
                        None => {
                            for (i, bytes) in record.iter().enumerate() {
                                if let Err(e) = std::str::from_utf8(bytes) {
                                    return malformed(
                                        Some(i),
                                        format!("invalid UTF-8 at byte {} of the field", e.valid_up_to()),
                                    );
                                }
                            }
                            unreachable!("a record whose fields are all UTF-8 is UTF-8")
                        }
                    }
                }
                Encoding::Latin1 => {
                    let mut text = String::new();
                    for (i, bytes) in record.iter().enumerate() {
                        text.clear();
                        decode_into(bytes, Encoding::Latin1, &mut text).expect("Latin-1 decodes every byte");
                        field(i, &text);
                    }
                }
            }
            return Ok(Next::Record);
        }
    }

    fn io_error(&self, row: u64, e: impl std::fmt::Display) -> SourceError {
        SourceError::Read {
            path: self.name.clone(),
            message: format!("cannot read past row {row}: {e}"),
        }
    }

    fn header_line(&mut self) -> Result<Vec<String>, SourceError> {
        let mut buf = RecordBuf::default();
        let name = self.name.clone();
        let empty = || SourceError::Empty { path: name.clone() };
        match &mut self.inner {
            Inner::Csv { reader, record, .. } => {
                if !reader.read_byte_record(record).map_err(|e| SourceError::Read {
                    path: name.clone(),
                    message: format!("cannot read the header: {e}"),
                })? {
                    return Err(empty());
                }
                Ok(record
                    .iter()
                    .map(|f| decode(f, self.encoding).unwrap_or_else(|_| String::from_utf8_lossy(f).into_owned()))
                    .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
                    .collect())
            }
            Inner::Lines {
                reader, line, line_no, ..
            } => {
                line.clear();
                let n = reader.read_until(b'\n', line).map_err(|e| SourceError::Read {
                    path: name.clone(),
                    message: format!("cannot read the header: {e}"),
                })?;
                if n == 0 {
                    return Err(empty());
                }
                *line_no += 1;
                let text = String::from_utf8_lossy(line);
                buf.fields = text
                    .trim_start_matches('\u{feff}')
                    .split_ascii_whitespace()
                    .map(str::to_string)
                    .collect();
                Ok(buf.fields)
            }
            Inner::Parquet { .. } | Inner::Rows { .. } => Ok(self.columns.clone()),
        }
    }

    /// NDJSON has no header: the columns are those the pipeline asks for plus the first object's keys.
    fn json_columns(&mut self, wanted: &[String]) -> Result<Vec<String>, SourceError> {
        let mut columns: Vec<String> = wanted.to_vec();
        if let Inner::Lines { reader, .. } = &mut self.inner {
            let peek = reader.fill_buf().map_err(|e| SourceError::Read {
                path: self.name.clone(),
                message: e.to_string(),
            })?;
            if peek.is_empty() {
                return Err(SourceError::Empty {
                    path: self.name.clone(),
                });
            }
            let first_line = peek.split(|b| *b == b'\n').next().unwrap_or_default();
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(first_line) {
                for key in map.keys() {
                    if !columns.contains(key) {
                        columns.push(key.clone());
                    }
                }
            }
        }
        Ok(columns)
    }

    /// Read the next record into `buf`.
    pub fn next(&mut self, buf: &mut RecordBuf) -> Result<Next, SourceError> {
        let width = self.columns.len();
        buf.fields.resize_with(width, String::new);
        match &mut self.inner {
            Inner::Csv { .. } => {
                let fields = &mut buf.fields;
                self.next_csv(&mut buf.row, |i, text| {
                    fields[i].clear();
                    fields[i].push_str(text);
                })
            }
            Inner::Lines {
                reader,
                line,
                line_no,
                split,
            } => loop {
                line.clear();
                let n = reader.read_until(b'\n', line).map_err(|e| SourceError::Read {
                    path: self.name.clone(),
                    message: format!("cannot read past row {line_no}: {e}"),
                })?;
                if n == 0 {
                    return Ok(Next::End);
                }
                *line_no += 1;
                let row = *line_no;
                buf.row = row;
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let malformed = |field: Option<String>, reason: String| {
                    Next::Malformed(MalformedRow {
                        row,
                        raw: shorten(String::from_utf8_lossy(line).into_owned()),
                        field,
                        reason,
                    })
                };
                if line.len() > self.max_field.saturating_mul(width.max(1)) {
                    return Ok(malformed(
                        None,
                        format!("row is {} bytes, over the field limit", line.len()),
                    ));
                }
                let text = match decode(line, self.encoding) {
                    Ok(t) => t,
                    Err(at) => return Ok(malformed(None, format!("invalid UTF-8 at byte {at} of the row"))),
                };
                for f in buf.fields.iter_mut() {
                    f.clear();
                }
                match split {
                    LineSplit::Whitespace => {
                        let parts: Vec<&str> = text.split_ascii_whitespace().collect();
                        if parts.len() != width {
                            return Ok(malformed(
                                None,
                                format!("has {} fields, the header has {width}", parts.len()),
                            ));
                        }
                        for (out, part) in buf.fields.iter_mut().zip(parts) {
                            out.push_str(part);
                        }
                    }
                    LineSplit::Fixed(widths) => {
                        let mut chars = text.chars();
                        for (i, w) in widths.iter().enumerate().take(width) {
                            let out = &mut buf.fields[i];
                            out.extend(chars.by_ref().take(*w));
                            let trimmed = out.trim();
                            if trimmed.len() != out.len() {
                                *out = trimmed.to_string();
                            }
                        }
                        if chars.any(|c| !c.is_whitespace()) {
                            return Ok(malformed(None, "is longer than the fixed-width layout".into()));
                        }
                    }
                    LineSplit::Json => {
                        let value: serde_json::Value = match serde_json::from_str(&text) {
                            Ok(v) => v,
                            Err(e) => return Ok(malformed(None, format!("invalid JSON: {e}"))),
                        };
                        let serde_json::Value::Object(map) = value else {
                            return Ok(malformed(None, "is not a JSON object".into()));
                        };
                        for (i, name) in self.columns.iter().enumerate() {
                            let out = &mut buf.fields[i];
                            match map.get(name) {
                                None | Some(serde_json::Value::Null) => {}
                                Some(serde_json::Value::String(s)) => out.push_str(s),
                                Some(other) => out.push_str(&other.to_string()),
                            }
                            if out.len() > self.max_field {
                                let len = out.len();
                                return Ok(malformed(
                                    Some(name.clone()),
                                    format!("field is {len} bytes, over the {} byte limit", self.max_field),
                                ));
                            }
                        }
                    }
                }
                return Ok(Next::Record);
            },
            Inner::Rows { rows, row } => {
                let Some(values) = rows.next() else {
                    return Ok(Next::End);
                };
                *row += 1;
                buf.row = *row;
                for (out, value) in buf.fields.iter_mut().zip(values) {
                    out.clear();
                    if let Some(v) = value {
                        out.push_str(&v);
                    }
                }
                Ok(Next::Record)
            }
            Inner::Parquet { reader, batch, row } => loop {
                if let Some((columns, at)) = batch
                    && *at < columns.first().map_or(0, |c| c.len())
                {
                    *row += 1;
                    buf.row = *row;
                    for (out, column) in buf.fields.iter_mut().zip(columns.iter()) {
                        out.clear();
                        if column.is_valid(*at) {
                            out.push_str(column.value(*at));
                        }
                    }
                    *at += 1;
                    return Ok(Next::Record);
                }
                match reader.next() {
                    None => return Ok(Next::End),
                    Some(Err(e)) => {
                        return Err(SourceError::Read {
                            path: self.name.clone(),
                            message: format!("cannot read past row {row}: {e}"),
                        });
                    }
                    Some(Ok(next)) => *batch = Some((text_columns(&next, &self.name)?, 0)),
                }
            },
        }
    }
}

fn text_columns(batch: &RecordBatch, name: &Path) -> Result<Vec<StringArray>, SourceError> {
    batch
        .columns()
        .iter()
        .map(|c| {
            let text = cast(c, &DataType::Utf8).map_err(|e| SourceError::Read {
                path: name.to_path_buf(),
                message: format!("cannot read a column as text: {e}"),
            })?;
            Ok(text
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8 gives a StringArray")
                .clone())
        })
        .collect()
}

/// The csv reader's buffer; [`TailRead`] keeps twice as much, so the byte before the reader's
/// position is always at hand.
const CSV_BUFFER_BYTES: usize = 64 << 10;

/// The line a record just read begins on. The csv crate gives a record the position where its
/// read began: before the blank lines it skipped, and in a file with CRLF line ends before the LF
/// that ends the line above (it is consumed with the next record), so every row number would be
/// one too small. Where the read ended is exact: back from there by the line ends inside the
/// record, and by its own LF when that ended it. `None` when the byte is no longer kept.
fn record_line(
    reader: &csv::Reader<TailRead<Box<dyn Read + Send>>>,
    record: &csv::ByteRecord,
    quote: u8,
) -> Option<u64> {
    let position = reader.position();
    let end = position.byte();
    let input = reader.get_ref();
    let last = input.byte_at(end.checked_sub(1)?)?;
    let inside = record.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
    // Data can end in an LF only inside quotes; the LF that ends such a record comes after the
    // closing quote. Without a quote before it, the last LF is the data's own: a quote left open
    // at the end of the input.
    let data_ends_in_lf = record.as_slice().last() == Some(&b'\n');
    let own_lf =
        last == b'\n' && (!data_ends_in_lf || end.checked_sub(2).and_then(|at| input.byte_at(at)) == Some(quote));
    position.line().checked_sub(inside + u64::from(own_lf))
}

/// A reader that keeps the bytes it handed over last (at least `2 * CSV_BUFFER_BYTES`), for
/// [`record_line`].
struct TailRead<R> {
    inner: R,
    /// Offset in the input of `tail[0]`.
    tail_start: u64,
    tail: Vec<u8>,
}

impl<R> TailRead<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            tail_start: 0,
            tail: Vec::new(),
        }
    }

    fn byte_at(&self, offset: u64) -> Option<u8> {
        let at = usize::try_from(offset.checked_sub(self.tail_start)?).ok()?;
        self.tail.get(at).copied()
    }
}

impl<R: Read> Read for TailRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Dropping the front only now and then keeps the copying to about once per byte.
        if self.tail.len() + n > 16 * CSV_BUFFER_BYTES {
            let drop = self.tail.len().saturating_sub(2 * CSV_BUFFER_BYTES);
            self.tail.drain(..drop);
            self.tail_start += drop as u64;
        }
        self.tail.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn shorten(mut s: String) -> String {
    if s.len() > RAW_ROW_LIMIT {
        let mut end = RAW_ROW_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Decode bytes; on invalid UTF-8, the byte offset where it starts.
fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, usize> {
    let mut out = String::with_capacity(bytes.len());
    decode_into(bytes, encoding, &mut out)?;
    Ok(out)
}

fn decode_into(bytes: &[u8], encoding: Encoding, out: &mut String) -> Result<(), usize> {
    match encoding {
        Encoding::Utf8 => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.valid_up_to())?;
            out.push_str(text);
        }
        // Latin-1 bytes are the first 256 Unicode code points.
        Encoding::Latin1 => out.extend(bytes.iter().map(|&b| b as char)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<(u64, Vec<String>)>;

    fn read_all(body: &str, name: &str, spec: &FormatSpec) -> (Vec<String>, Rows, Vec<String>) {
        let mut reader =
            RecordReader::from_bytes(Path::new(name), bytes::Bytes::from(body.to_string()), spec, &[]).unwrap();
        let mut buf = RecordBuf::default();
        let (mut rows, mut bad) = (Vec::new(), Vec::new());
        loop {
            match reader.next(&mut buf).unwrap() {
                Next::Record => rows.push((buf.row, buf.fields.clone())),
                Next::Malformed(MalformedRow { row, reason, .. }) => bad.push(format!("{row}: {reason}")),
                Next::End => break,
            }
        }
        (reader.columns().to_vec(), rows, bad)
    }

    #[test]
    fn csv_with_quotes_and_a_short_row() {
        let (cols, rows, bad) = read_all(
            "a;b\n1;\"x;y\"\n2\n3;z\n",
            "t.csv",
            &FormatSpec {
                delimiter: Some(";".into()),
                ..FormatSpec::default()
            },
        );
        assert_eq!(cols, ["a", "b"]);
        assert_eq!(
            rows,
            [(2, vec!["1".into(), "x;y".into()]), (4, vec!["3".into(), "z".into()])]
        );
        assert_eq!(bad, ["3: has 1 fields, the header has 2"]);
    }

    #[test]
    fn csv_chunks_check_utf8_per_record_and_field() {
        // Row 2 good with two-byte characters; row 3 invalid in its second field; row 4's fields
        // are each invalid though the record's bytes, put together, are not ("a\xc3" + "\xa9b"
        // = "aéb"); row 5 too long a field; row 6 good; a blank line at the end.
        let body = b"name,city\nM\xc3\xbcller,K\xc3\xb6ln\nx,\xff\nA\xc3,\xa9b\nlong,abcdefghijk\ny,z\n\n";
        let spec = FormatSpec::default();
        let mut reader =
            RecordReader::from_bytes(Path::new("u.csv"), bytes::Bytes::from_static(body), &spec, &[]).unwrap();
        reader.max_field = 10;
        let chunk = reader.next_chunk(&mut RecordBuf::default(), 100).unwrap();
        assert_eq!(chunk.rows, [2, 6]);
        let texts = |c: usize| {
            let column = chunk.fields[c].as_any().downcast_ref::<StringArray>().unwrap();
            column.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(texts(0), ["Müller", "y"]);
        assert_eq!(texts(1), ["Köln", "z"]);
        let bad: Vec<String> = chunk
            .malformed
            .iter()
            .map(|m| format!("{} {}: {}", m.row, m.field.as_deref().unwrap_or("-"), m.reason))
            .collect();
        assert_eq!(
            bad,
            [
                "3 city: invalid UTF-8 at byte 0 of the field",
                "4 name: invalid UTF-8 at byte 1 of the field",
                "5 city: field is 11 bytes, over the 10 byte limit",
            ]
        );
        assert!(reader.next_chunk(&mut RecordBuf::default(), 100).unwrap().is_empty());
    }

    #[test]
    fn csv_rows_are_the_lines_records_begin_on() {
        let first_chunk = |body: bytes::Bytes, rows: usize| {
            RecordReader::from_bytes(Path::new("r.csv"), body, &FormatSpec::default(), &[])
                .unwrap()
                .next_chunk(&mut RecordBuf::default(), rows)
                .unwrap()
        };
        // CRLF line ends, blank lines, a quoted field over two lines, no newline at the end: the
        // csv crate's own record position is where its read began, which is none of these.
        for (body, rows) in [
            (&b"a,b\r\n1,2\r\n3,4\r\n"[..], vec![2, 3]),
            (b"a,b\n1,2\n\n\n3,4\n", vec![2, 5]),
            (b"a,b\r\n1,2\r\n\r\n3,4", vec![2, 4]),
            (b"a,b\n\"1\n1\",2\n3,4", vec![2, 4]),
            (b"a,b\r\n\"1\r\n1\",2\r\n\r\n3,4\r\n", vec![2, 5]),
            (b"a,b\n1,\"x\n\"\n3,4\n", vec![2, 4]),
            // A quote left open at the end: the record runs to the end of the input.
            (b"a,b\n1,\"x\n", vec![2]),
        ] {
            let chunk = first_chunk(bytes::Bytes::from_static(body), 100);
            assert_eq!(chunk.rows, rows, "{:?}", String::from_utf8_lossy(body));
            assert!(chunk.malformed.is_empty(), "{:?}", chunk.malformed);
        }
        // Lines far into a file: the bytes that end a record are still at hand.
        let mut long = String::from("a,b\r\n");
        for i in 0..150_000 {
            long.push_str(&format!("{i},\"x\r\ny\"\r\n"));
        }
        assert!(long.len() > 32 * CSV_BUFFER_BYTES, "the kept bytes move on");
        let chunk = first_chunk(bytes::Bytes::from(long), 200_000);
        assert_eq!(chunk.rows.len(), 150_000);
        assert!(chunk.rows.iter().enumerate().all(|(i, row)| *row == 2 + 2 * i as u64));
    }

    #[test]
    fn fixed_width_and_ndjson() {
        let spec = FormatSpec {
            kind: Some(FormatKind::FixedWidth),
            widths: vec![4, 6],
            ..FormatSpec::default()
        };
        let (cols, rows, _) = read_all("ID  NAME\nA1  Bolt  \nB2  Nut\n", "p.txt", &spec);
        assert_eq!(cols, ["ID", "NAME"]);
        assert_eq!(rows[0].1, ["A1", "Bolt"]);
        assert_eq!(rows[1].1, ["B2", "Nut"]);
        let (cols, rows, bad) = read_all(
            "{\"id\":1,\"n\":\"x\"}\nnot json\n{\"id\":2,\"n\":null}\n",
            "a.ndjson",
            &FormatSpec::default(),
        );
        assert_eq!(cols, ["id", "n"]);
        assert_eq!(
            rows,
            [(1, vec!["1".into(), "x".into()]), (3, vec!["2".into(), String::new()])]
        );
        assert!(bad[0].starts_with("2: invalid JSON"), "{bad:?}");
    }

    #[test]
    fn latin1_whitespace_and_parquet() {
        let spec = FormatSpec {
            encoding: Some(Encoding::Latin1),
            delimiter: Some(";".into()),
            ..FormatSpec::default()
        };
        let mut reader = RecordReader::from_bytes(
            Path::new("old.csv"),
            bytes::Bytes::from_static(b"name;city\nM\xfcller;K\xf6ln\n"),
            &spec,
            &[],
        )
        .unwrap();
        let mut buf = RecordBuf::default();
        assert!(matches!(reader.next(&mut buf).unwrap(), Next::Record));
        assert_eq!(buf.fields, ["Müller", "Köln"]);

        let spec = FormatSpec {
            kind: Some(FormatKind::Whitespace),
            ..FormatSpec::default()
        };
        let (cols, rows, bad) = read_all("sku  qty\nA1   3\nB2 4 extra\n", "stock.txt", &spec);
        assert_eq!(cols, ["sku", "qty"]);
        assert_eq!(rows, [(2, vec!["A1".into(), "3".into()])]);
        assert_eq!(bad, ["3: has 3 fields, the header has 2"]);

        use datafusion::arrow::array::{ArrayRef, Int64Array};
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
        ])
        .unwrap();
        let mut parquet = Vec::new();
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(&mut parquet, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let mut reader = RecordReader::from_bytes(
            Path::new("t.parquet"),
            bytes::Bytes::from(parquet),
            &FormatSpec::default(),
            &[],
        )
        .unwrap();
        assert_eq!(reader.columns(), ["id", "name"]);
        let mut seen = Vec::new();
        while let Next::Record = reader.next(&mut buf).unwrap() {
            seen.push((buf.row, buf.fields.clone()));
        }
        assert_eq!(
            seen,
            [
                (1, vec!["1".to_string(), "a".into()]),
                (2, vec![String::new(), "b".into()])
            ]
        );
    }
}
