//! What de-duplication compares: a hash of each row's values, and each row's key as text.
//!
//! Both are defined on the values' text as Arrow's cast to `Utf8` writes it (`12.50` for a
//! decimal of scale 2, `2024-03-01` for a date), because `_row_hash` is stored with every staging
//! row: a new row and a stored one with the same values must hash alike across releases. Casting
//! each column to a text array to get there cost more than the rest of the checks together (a
//! decimal is formatted through two temporary strings), so [`ColumnText`] writes the same bytes
//! straight from the typed values for the types our entities use, and goes through Arrow's own
//! formatter, the one cast uses, for the rest. A unit test holds the two to the same bytes.

use std::fmt::Write as _;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Ends every value in the row hash, so `("ab", "c")` and `("a", "bc")` differ.
const UNIT_SEPARATOR: u8 = 0x1f;
/// Stands for a null in the row hash (no text value starts with a NUL byte).
const NULL_TEXT: &[u8] = b"\x00null";

#[inline]
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(FNV_PRIME);
    }
}

/// FNV-1a over each row's values as text, each followed by a unit separator (a null as
/// `\0null`): stable across runs, platforms and releases.
pub(crate) fn row_hashes(arrays: &[ArrayRef], rows: usize) -> Result<Vec<i64>, ArrowError> {
    let mut hashes = vec![FNV_OFFSET; rows];
    let mut scratch = Vec::new();
    for array in arrays {
        let column = ColumnText::new(array.as_ref())?;
        for (i, hash) in hashes.iter_mut().enumerate() {
            let text = column.text(i, &mut scratch)?.unwrap_or(NULL_TEXT);
            fnv(hash, text);
            fnv(hash, &[UNIT_SEPARATOR]);
        }
    }
    Ok(hashes.into_iter().map(|h| h as i64).collect())
}

/// Every row's key as one text: the key columns' texts joined by a unit separator (a null as
/// nothing). Held in one buffer: an input of millions of rows makes no string per row.
pub(crate) struct KeyTexts {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyTexts {
    /// The keys of the rows of `batches`, in order.
    pub(crate) fn of_batches(batches: &[RecordBatch], key: &[String]) -> Result<Self, ArrowError> {
        let mut keys = Self {
            bytes: Vec::new(),
            ends: Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum()),
        };
        for batch in batches {
            keys.extend(batch, key)?;
        }
        Ok(keys)
    }

    fn extend(&mut self, batch: &RecordBatch, key: &[String]) -> Result<(), ArrowError> {
        let columns = key
            .iter()
            .map(|k| {
                let column = batch
                    .column_by_name(k)
                    .ok_or_else(|| ArrowError::SchemaError(format!("key column `{k}` is missing")))?;
                ColumnText::new(column.as_ref())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.ends.len() + batch.num_rows() > u32::MAX as usize {
            // De-duplication keeps every key in memory and counts them in 32 bits.
            return Err(ArrowError::InvalidArgumentError(format!(
                "more than {} keys to de-duplicate at once",
                u32::MAX
            )));
        }
        let mut scratch = Vec::new();
        for i in 0..batch.num_rows() {
            for (j, column) in columns.iter().enumerate() {
                if j > 0 {
                    self.bytes.push(UNIT_SEPARATOR);
                }
                if let Some(text) = column.text(i, &mut scratch)? {
                    self.bytes.extend_from_slice(text);
                }
            }
            self.ends.push(self.bytes.len());
        }
        Ok(())
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Key `i`.
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Every key, in row order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Key `i` as a reader sees it: the columns' values separated by commas.
    pub(crate) fn display(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).replace('\u{1f}', ",")
    }
}

/// One column's values as the text Arrow's cast to `Utf8` gives them.
pub(crate) struct ColumnText<'a> {
    nulls: Option<NullBuffer>,
    values: Values<'a>,
}

/// The typed values behind a [`ColumnText`].
enum Values<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Int64(&'a Int64Array),
    Decimal128(&'a Decimal128Array, usize, i8),
    Date32(&'a Date32Array),
    /// Any other type, through the formatter cast itself uses.
    Formatted(ArrayFormatter<'a>),
}

impl<'a> ColumnText<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Self, ArrowError> {
        let values = match array.data_type() {
            DataType::Utf8 => Values::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Values::LargeUtf8(array.as_string::<i64>()),
            DataType::Utf8View => Values::Utf8View(array.as_string_view()),
            DataType::Int64 => Values::Int64(array.as_primitive::<Int64Type>()),
            DataType::Decimal128(precision, scale) => {
                Values::Decimal128(array.as_primitive::<Decimal128Type>(), usize::from(*precision), *scale)
            }
            DataType::Date32 => Values::Date32(array.as_primitive::<Date32Type>()),
            _ => Values::Formatted(ArrayFormatter::try_new(array, &FormatOptions::default())?),
        };
        Ok(Self {
            nulls: array.nulls().cloned(),
            values,
        })
    }

    /// Row `i`'s text, or `None` for a null; `scratch` holds it when the array does not.
    pub(crate) fn text<'s>(&'s self, i: usize, scratch: &'s mut Vec<u8>) -> Result<Option<&'s [u8]>, ArrowError> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            return Ok(None);
        }
        scratch.clear();
        Ok(Some(match &self.values {
            Values::Utf8(a) => a.value(i).as_bytes(),
            Values::LargeUtf8(a) => a.value(i).as_bytes(),
            Values::Utf8View(a) => a.value(i).as_bytes(),
            Values::Int64(a) => {
                scratch.extend_from_slice(itoa::Buffer::new().format(a.value(i)).as_bytes());
                scratch
            }
            Values::Decimal128(a, precision, scale) => {
                write_decimal(a.value(i), *precision, *scale, scratch);
                scratch
            }
            Values::Date32(a) => {
                write_date(a.value(i), scratch);
                scratch
            }
            Values::Formatted(formatter) => {
                let mut text = String::new();
                formatter.value(i).write(&mut text)?;
                scratch.extend_from_slice(text.as_bytes());
                scratch
            }
        }))
    }
}

/// A decimal as `arrow_data::decimal::format_decimal_str` writes it (with its `safe` bound: at most
/// `precision` digits), from the digits of the unscaled value.
fn write_decimal(value: i128, precision: usize, scale: i8, out: &mut Vec<u8>) {
    let mut digits_buffer = itoa::Buffer::new();
    // The same digits; 64-bit division is several times cheaper than 128-bit, and amounts fit.
    let text = match i64::try_from(value) {
        Ok(small) => digits_buffer.format(small),
        Err(_) => digits_buffer.format(value),
    }
    .as_bytes();
    let (sign, rest): (&[u8], &[u8]) = match text.split_first() {
        Some((b'-', rest)) => (b"-", rest),
        _ => (b"", text),
    };
    let bounded = &text[..precision.min(rest.len()) + sign.len()];
    if scale == 0 {
        out.extend_from_slice(bounded);
    } else if scale < 0 {
        out.extend_from_slice(bounded);
        out.resize(out.len() + scale.unsigned_abs() as usize, b'0');
    } else if rest.len() > scale as usize {
        let (whole, fraction) = bounded.split_at(bounded.len() - scale as usize);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    } else {
        out.extend_from_slice(sign);
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale as usize - rest.len(), b'0');
        out.extend_from_slice(rest);
    }
}

/// Days since 1970-01-01 as chrono's `NaiveDate` debug form (`YYYY-MM-DD`), which cast writes.
fn write_date(days: i32, out: &mut Vec<u8>) {
    let (year, month, day) = tributary_warehouse::calendar::civil_from_days(i64::from(days));
    if (0..=9999).contains(&year) {
        let digit = |n: i64| b'0' + n as u8;
        out.extend_from_slice(&[
            digit(year / 1000),
            digit(year / 100 % 10),
            digit(year / 10 % 10),
            digit(year % 10),
            b'-',
            digit(month / 10),
            digit(month % 10),
            b'-',
            digit(day / 10),
            digit(day % 10),
        ]);
    } else {
        // Years outside 0..=9999 carry a sign; rare enough to leave to chrono.
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163));
        let mut text = String::new();
        match date {
            Some(d) => write!(text, "{d:?}").expect("writing to a string"),
            None => write!(text, "{days}").expect("writing to a string"),
        }
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, TimestampMicrosecondArray};
    use datafusion::arrow::compute::cast;

    use super::*;

    /// The definition: cast each column to text, FNV-1a over the texts.
    fn hashes_through_cast(arrays: &[ArrayRef], rows: usize) -> Vec<i64> {
        let mut hashes = vec![FNV_OFFSET; rows];
        for array in arrays {
            let text = cast(array, &DataType::Utf8).expect("casts to text");
            let text = text.as_string::<i32>();
            for (i, h) in hashes.iter_mut().enumerate() {
                let bytes = if text.is_null(i) {
                    NULL_TEXT
                } else {
                    text.value(i).as_bytes()
                };
                fnv(h, bytes);
                fnv(h, &[UNIT_SEPARATOR]);
            }
        }
        hashes.into_iter().map(|h| h as i64).collect()
    }

    fn texts_through_cast(array: &ArrayRef) -> Vec<Option<String>> {
        let text = cast(array, &DataType::Utf8).expect("casts to text");
        text.as_string::<i32>().iter().map(|t| t.map(str::to_string)).collect()
    }

    fn texts_direct(array: &ArrayRef) -> Vec<Option<String>> {
        let column = ColumnText::new(array.as_ref()).expect("supported");
        let mut scratch = Vec::new();
        (0..array.len())
            .map(|i| {
                column
                    .text(i, &mut scratch)
                    .expect("formats")
                    .map(|b| String::from_utf8(b.to_vec()).expect("text"))
            })
            .collect()
    }

    /// A spread of values: small, large, negative, zero and the extremes, from a fixed-seed LCG.
    fn spread(count: usize) -> Vec<i128> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut out = vec![0, 1, -1, 5, -5, 9, 10, -10, 99, 100, 12_345, -12_345];
        for _ in 0..count {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let magnitude = 10i128.pow((state >> 59) as u32 + 1);
            let v = i128::from((state >> 11) as i64) % magnitude;
            out.push(v);
        }
        out
    }

    #[test]
    fn decimals_read_as_cast_writes_them() {
        for (precision, scale) in [(18, 2), (9, 4), (38, 10), (12, 0), (5, 5), (10, -2), (3, 1)] {
            let values: Vec<Option<i128>> = spread(2_000)
                .into_iter()
                .map(|v| v % 10i128.pow(u32::from(precision)))
                .map(Some)
                .chain([None])
                .collect();
            let array: ArrayRef = Arc::new(
                Decimal128Array::from(values)
                    .with_precision_and_scale(precision, scale)
                    .expect("valid"),
            );
            assert_eq!(
                texts_direct(&array),
                texts_through_cast(&array),
                "decimal({precision},{scale})"
            );
        }
    }

    #[test]
    fn dates_and_integers_read_as_cast_writes_them() {
        let days: Vec<Option<i32>> = (-800_000..3_000_000)
            .step_by(997)
            .map(Some)
            .chain([Some(0), Some(-1), Some(2_932_896), Some(-719_528), Some(-719_529), None])
            .collect();
        let dates: ArrayRef = Arc::new(Date32Array::from(days));
        assert_eq!(texts_direct(&dates), texts_through_cast(&dates));
        let ints: Vec<Option<i64>> = spread(2_000)
            .into_iter()
            .map(|v| Some(v as i64))
            .chain([Some(i64::MIN), Some(i64::MAX), None])
            .collect();
        let ints: ArrayRef = Arc::new(Int64Array::from(ints));
        assert_eq!(texts_direct(&ints), texts_through_cast(&ints));
    }

    #[test]
    fn row_hashes_match_the_hash_of_the_cast_texts() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("A-1"), None, Some(""), Some("ü")])),
            Arc::new(Int64Array::from(vec![Some(1), Some(-2), None, Some(0)])),
            Arc::new(
                Decimal128Array::from(vec![Some(1250), Some(-5), Some(0), None])
                    .with_precision_and_scale(18, 2)
                    .expect("valid"),
            ),
            Arc::new(Date32Array::from(vec![Some(19_000), None, Some(-1), Some(0)])),
            Arc::new(Float64Array::from(vec![Some(1.5), Some(0.1), None, Some(-2.0)])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(0), Some(-1)])
                    .with_timezone("UTC"),
            ),
            Arc::new(StringViewArray::from(vec![
                Some("x"),
                None,
                Some("a longer text value"),
                Some(""),
            ])),
        ];
        assert_eq!(
            row_hashes(&columns, 4).expect("hashes"),
            hashes_through_cast(&columns, 4)
        );
    }

    #[test]
    fn keys_join_the_key_columns() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "order_id",
                Arc::new(StringArray::from(vec![Some("SO-1"), Some("SO-1"), None])) as ArrayRef,
            ),
            (
                "line",
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(3)])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let keys = KeyTexts::of_batches(&[batch], &["order_id".into(), "line".into()]).expect("keys");
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.get(0), b"SO-1\x1f1");
        assert_eq!(keys.get(2), b"\x1f3");
        assert_eq!(keys.display(1), "SO-1,2");
    }
}
