//! Writing the exports: one [`ExportFile`] per file, each formatting rows straight into a byte
//! buffer (no per-field allocation) and writing it out in large blocks.
//!
//! Files are written under a temporary name and renamed when complete, so a scanner watching the
//! landing directory never sees half a file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::calendar::{Day, civil};
use super::{SampleError, write_failed};

const FLUSH_AT: usize = 1 << 18;

/// The layout of one export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Delimited text with a header line; fields quoted only when they must be.
    Delimited(u8),
    /// Delimited text, gzip-compressed.
    DelimitedGzip(u8),
    /// One JSON object a line.
    Ndjson,
    /// Fixed-width columns with an aligned header line.
    FixedWidth,
}

/// One export being written.
pub struct ExportFile {
    relative: String,
    partial: PathBuf,
    target: PathBuf,
    out: Sink,
    buf: Vec<u8>,
    format: Format,
    delimiter: u8,
    first_field: bool,
    rows: u64,
}

enum Sink {
    Plain(BufWriter<File>),
    Gzip(Box<GzEncoder<BufWriter<File>>>),
}

impl ExportFile {
    /// Start `relative` (e.g. `erp/sales_order_lines.csv`) under `root`, writing the header for
    /// delimited files.
    pub fn create(root: &Path, relative: &str, format: Format, header: &[&str]) -> Result<Self, SampleError> {
        let target = root.join(relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(write_failed(parent))?;
        }
        let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("export");
        let partial = target.with_file_name(format!(".{file_name}.partial"));
        let file = BufWriter::with_capacity(1 << 16, File::create(&partial).map_err(write_failed(&partial))?);
        let out = match format {
            // Fast compression: the exports are written far more often than they are shipped.
            Format::DelimitedGzip(_) => Sink::Gzip(Box::new(GzEncoder::new(file, Compression::fast()))),
            _ => Sink::Plain(file),
        };
        let delimiter = match format {
            Format::Delimited(d) | Format::DelimitedGzip(d) => d,
            Format::Ndjson | Format::FixedWidth => b',',
        };
        let mut export = Self {
            relative: relative.to_string(),
            partial,
            target,
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            format,
            delimiter,
            first_field: true,
            rows: 0,
        };
        if matches!(format, Format::Delimited(_) | Format::DelimitedGzip(_)) {
            for name in header {
                export.text(name);
            }
            export.buf.push(b'\n');
            export.first_field = true;
        }
        Ok(export)
    }

    /// Rows written so far (header excluded).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    #[inline]
    fn separate(&mut self) {
        if !self.first_field {
            self.buf.push(self.delimiter);
        }
        self.first_field = false;
    }

    /// A text field, quoted when it contains the delimiter, a quote or a line break.
    #[inline]
    pub fn text(&mut self, value: &str) {
        self.separate();
        let d = self.delimiter;
        if value.bytes().any(|b| b == d || b == b'"' || b == b'\n' || b == b'\r') {
            self.buf.push(b'"');
            for b in value.bytes() {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
    }

    /// An empty field.
    #[inline]
    pub fn empty(&mut self) {
        self.separate();
    }

    /// An integer field.
    #[inline]
    pub fn int(&mut self, value: i64) {
        self.separate();
        push_int(&mut self.buf, value);
    }

    /// A monetary amount given in cents, printed with two decimals.
    #[inline]
    pub fn money(&mut self, cents: i64) {
        self.separate();
        push_money(&mut self.buf, cents);
    }

    /// A date as `YYYY-MM-DD`.
    #[inline]
    pub fn date(&mut self, day: Day) {
        self.separate();
        push_iso_date(&mut self.buf, day);
    }

    /// A date as `DD.MM.YYYY`, as many European ERP systems print it.
    #[inline]
    pub fn date_dmy(&mut self, day: Day) {
        self.separate();
        let (y, m, d) = civil(day);
        push_two(&mut self.buf, d);
        self.buf.push(b'.');
        push_two(&mut self.buf, m);
        self.buf.push(b'.');
        push_int(&mut self.buf, y as i64);
    }

    /// A UTC timestamp as `YYYY-MM-DDTHH:MM:SSZ`.
    #[inline]
    pub fn timestamp(&mut self, day: Day, second_of_day: u32) {
        self.separate();
        push_timestamp(&mut self.buf, day, second_of_day);
    }

    /// Finish the current row.
    #[inline]
    pub fn end_row(&mut self) -> Result<(), SampleError> {
        self.buf.push(b'\n');
        self.first_field = true;
        self.rows += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Direct access for NDJSON and fixed-width rows, which format their own fields. The caller
    /// ends the row with [`ExportFile::end_row`].
    #[inline]
    pub fn raw(&mut self) -> &mut Vec<u8> {
        debug_assert!(matches!(self.format, Format::Ndjson | Format::FixedWidth));
        &mut self.buf
    }

    fn flush_buffer(&mut self) -> Result<(), SampleError> {
        match &mut self.out {
            Sink::Plain(w) => w.write_all(&self.buf),
            Sink::Gzip(w) => w.write_all(&self.buf),
        }
        .map_err(write_failed(&self.partial))?;
        self.buf.clear();
        Ok(())
    }

    /// Flush and move the file to its final name. Returns (relative path, rows).
    ///
    /// There is no fsync: the exports can be regenerated byte for byte from the seed, so paying
    /// for durability (a fifth of the run time, measured) buys nothing. The rename alone keeps a
    /// watcher of the landing directory from ever seeing half a file.
    pub fn finish(mut self) -> Result<(String, u64), SampleError> {
        self.flush_buffer()?;
        match self.out {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish().and_then(|mut w| w.flush()),
        }
        .map_err(write_failed(&self.partial))?;
        fs::rename(&self.partial, &self.target).map_err(write_failed(&self.target))?;
        Ok((self.relative, self.rows))
    }
}

/// Append a signed integer.
#[inline]
pub fn push_int(buf: &mut Vec<u8>, value: i64) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(value).as_bytes());
}

/// Append cents as a decimal with two places (`-12.05`).
#[inline]
pub fn push_money(buf: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        buf.push(b'-');
    }
    let abs = cents.unsigned_abs();
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(abs / 100).as_bytes());
    buf.push(b'.');
    push_two(buf, (abs % 100) as u32);
}

#[inline]
fn push_two(buf: &mut Vec<u8>, value: u32) {
    buf.push(b'0' + (value / 10) as u8);
    buf.push(b'0' + (value % 10) as u8);
}

/// Append `YYYY-MM-DD`.
#[inline]
pub fn push_iso_date(buf: &mut Vec<u8>, day: Day) {
    let (y, m, d) = civil(day);
    push_int(buf, y as i64);
    buf.push(b'-');
    push_two(buf, m);
    buf.push(b'-');
    push_two(buf, d);
}

/// Append `YYYYMMDD`.
#[inline]
pub fn push_compact_date(buf: &mut Vec<u8>, day: Day) {
    let (y, m, d) = civil(day);
    push_int(buf, y as i64);
    push_two(buf, m);
    push_two(buf, d);
}

/// Append `YYYY-MM-DDTHH:MM:SSZ`.
#[inline]
pub fn push_timestamp(buf: &mut Vec<u8>, day: Day, second_of_day: u32) {
    push_iso_date(buf, day);
    buf.push(b'T');
    push_two(buf, second_of_day / 3600);
    buf.push(b':');
    push_two(buf, second_of_day / 60 % 60);
    buf.push(b':');
    push_two(buf, second_of_day % 60);
    buf.push(b'Z');
}

/// Append a JSON string literal (the simulation's strings need only the basic escapes).
pub fn push_json_string(buf: &mut Vec<u8>, value: &str) {
    buf.push(b'"');
    for b in value.bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            0..=0x1f => {
                buf.extend_from_slice(b"\\u00");
                buf.push(b"0123456789abcdef"[(b >> 4) as usize]);
                buf.push(b"0123456789abcdef"[(b & 15) as usize]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// Append `value` left-aligned in a column of `width` characters, cut if longer (as fixed-width
/// exports do). Widths count characters, not bytes, so accented names keep their columns aligned.
pub fn push_fixed(buf: &mut Vec<u8>, value: &str, width: usize) {
    let mut used = 0;
    for ch in value.chars().take(width) {
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        used += 1;
    }
    buf.resize(buf.len() + (width - used), b' ');
}

/// Append `value` right-aligned in a column of `width` characters.
pub fn push_fixed_right(buf: &mut Vec<u8>, value: &str, width: usize) {
    let n = value.chars().count().min(width);
    buf.resize(buf.len() + (width - n), b' ');
    for ch in value.chars().take(width) {
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fields() {
        let mut buf = Vec::new();
        push_money(&mut buf, -1205);
        buf.push(b' ');
        push_money(&mut buf, 7);
        buf.push(b' ');
        push_timestamp(&mut buf, super::super::calendar::day_of(2025, 3, 9), 3600 + 61);
        buf.push(b' ');
        push_json_string(&mut buf, "a\"b\\c\u{1}");
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            r#"-12.05 0.07 2025-03-09T01:01:01Z "a\"b\\c\u0001""#
        );
    }

    #[test]
    fn quotes_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = ExportFile::create(dir.path(), "x/t.csv", Format::Delimited(b';'), &["a", "b"]).unwrap();
        f.text("plain, with comma");
        f.text("semi;colon \"quoted\"");
        f.end_row().unwrap();
        let (rel, rows) = f.finish().unwrap();
        assert_eq!((rel.as_str(), rows), ("x/t.csv", 1));
        let text = fs::read_to_string(dir.path().join("x/t.csv")).unwrap();
        assert_eq!(text, "a;b\nplain, with comma;\"semi;colon \"\"quoted\"\"\"\n");
    }

    #[test]
    fn fixed_width_counts_characters() {
        let mut buf = Vec::new();
        push_fixed(&mut buf, "Müller", 8);
        push_fixed_right(&mut buf, "12.50", 7);
        push_fixed(&mut buf, "truncated-away", 5);
        assert_eq!(String::from_utf8(buf).unwrap(), "Müller    12.50trunc");
    }
}
