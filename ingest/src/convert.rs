//! Text to typed values, with a reason when a value does not parse, and Arrow builders to collect them.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Array, Decimal128Builder, Float64Builder,
    Int64Builder, PrimitiveArray, PrimitiveBuilder, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};

use datafusion::arrow::datatypes::ArrowPrimitiveType;

use crate::entity::ColumnType;

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Decimal, as an integer scaled by the column's scale.
    Decimal(i128),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
}

impl Value {
    /// The value as a number, for range checks.
    pub fn as_f64(&self, kind: ColumnType) -> Option<f64> {
        match (self, kind) {
            (Value::Int(i), _) => Some(*i as f64),
            (Value::Float(f), _) => Some(*f),
            (Value::Decimal(d), ColumnType::Decimal { scale, .. }) => {
                // i64 to f64 is one instruction, i128 to f64 a library call; amounts fit in i64.
                let unscaled = i64::try_from(*d).map_or(*d as f64, |d| d as f64);
                Some(unscaled / 10f64.powi(i32::from(scale)))
            }
            _ => None,
        }
    }
}

/// How to read dates and numbers of one column.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// chrono format for dates and timestamps.
    pub format: Option<String>,
    /// `,` for European decimals.
    pub decimal_comma: bool,
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parse `text` (already trimmed, not empty) as `kind`.
pub fn parse(text: &str, kind: ColumnType, options: &ParseOptions) -> Result<Value, String> {
    match kind {
        ColumnType::Text => Ok(Value::Text(text.to_string())),
        ColumnType::Integer => {
            let cleaned = strip_group_separators(text, options.decimal_comma);
            let whole = match split_at_point(&cleaned) {
                // "12.0" is an integer written by a spreadsheet.
                Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole,
                _ => &cleaned,
            };
            whole
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("`{text}` is not an integer"))
        }
        ColumnType::Float => {
            let cleaned = strip_group_separators(text, options.decimal_comma);
            cleaned
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::Float)
                .ok_or_else(|| format!("`{text}` is not a number"))
        }
        ColumnType::Decimal { precision, scale } => parse_decimal(text, precision, scale, options.decimal_comma),
        ColumnType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "x" => Ok(Value::Bool(true)),
            "false" | "f" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not true or false")),
        },
        ColumnType::Date => parse_date(text, options.format.as_deref()).map(Value::Date),
        ColumnType::Timestamp => parse_timestamp(text, options.format.as_deref()).map(Value::Timestamp),
    }
}

fn strip_group_separators(text: &str, decimal_comma: bool) -> std::borrow::Cow<'_, str> {
    // Searches for a byte, not a char: a char pattern compares its UTF-8 form with memcmp at every
    // candidate, a library call per number for a one-byte comparison.
    if decimal_comma {
        std::borrow::Cow::Owned(text.replace('.', "").replace(',', "."))
    } else if text.as_bytes().contains(&b',') {
        std::borrow::Cow::Owned(text.replace(',', ""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `text` split around its first `.`, if it has one.
fn split_at_point(text: &str) -> Option<(&str, &str)> {
    let point = text.bytes().position(|b| b == b'.')?;
    Some((&text[..point], &text[point + 1..]))
}

/// Exact decimal parsing: digits beyond the scale are rounded half away from zero.
pub fn parse_decimal(text: &str, precision: u8, scale: i8, decimal_comma: bool) -> Result<Value, String> {
    match plain_decimal(&strip_group_separators(text, decimal_comma), precision, scale as usize) {
        Ok(value) => Ok(Value::Decimal(value)),
        Err(NotPlain::Decimal) => Err(format!("`{text}` is not a decimal number")),
        Err(NotPlain::Precision) => Err(format!(
            "`{text}` has more than {} digits before the point",
            precision as usize - scale as usize
        )),
    }
}

/// Why a text is not a plain decimal of a given precision.
enum NotPlain {
    /// Not a sign, digits, a point and digits (or too long for 128 bits).
    Decimal,
    /// More digits before the point than the precision leaves.
    Precision,
}

/// The unscaled value of a plain decimal text (an optional sign, digits, an optional point and
/// digits) at `scale`, the first digit beyond the scale rounding half away from zero.
fn plain_decimal(text: &str, precision: u8, scale: usize) -> Result<i128, NotPlain> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, frac) = split_at_point(digits).unwrap_or((digits, ""));
    if (whole.is_empty() && frac.is_empty()) || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(NotPlain::Decimal);
    }
    let value = scaled_digits(whole.as_bytes(), frac.as_bytes(), scale).ok_or(NotPlain::Decimal)?;
    if 10i128
        .checked_pow(u32::from(precision))
        .is_none_or(|limit| value >= limit)
    {
        return Err(NotPlain::Precision);
    }
    Ok(if negative { -value } else { value })
}

/// The unscaled value of the ASCII digits `whole`.`frac` at `scale`, the first digit beyond the
/// scale rounding half away from zero; `None` past `i128`. Up to 18 digits the sum is kept in 64
/// bits: 128-bit multiplication costs several times more, and amounts are that short.
fn scaled_digits(whole: &[u8], frac: &[u8], scale: usize) -> Option<i128> {
    let digit = |b: &u8| u64::from(b - b'0');
    let round_up = frac.get(scale).is_some_and(|b| *b >= b'5');
    if whole.len() + scale <= 18 {
        let mut value = whole.iter().fold(0u64, |v, b| v * 10 + digit(b));
        for i in 0..scale {
            value = value * 10 + frac.get(i).map_or(0, digit);
        }
        return Some(i128::from(value + u64::from(round_up)));
    }
    let mut value: i128 = 0;
    for b in whole.iter().chain((0..scale).map(|i| frac.get(i).unwrap_or(&b'0'))) {
        value = value.checked_mul(10)?.checked_add(i128::from(digit(b)))?;
    }
    value.checked_add(i128::from(round_up))
}

/// `CAST(text AS DECIMAL(precision, scale))` as Arrow's cast computes it, for a column whose every
/// text is a plain decimal (a sign, digits, a point, digits: no spaces, group separators or
/// exponent) within the precision; `None` when any is not, for the caller to leave the whole
/// column to Arrow's cast and its errors. Arrow's cast parses each text through 256-bit integers
/// and formatted strings: 7.5% of the CPU of the sample's order-line ingest, whose `discount` is
/// such a mapping.
pub fn plain_texts_to_decimal(texts: &StringArray, precision: u8, scale: i8) -> Option<Decimal128Array> {
    let scale_digits = usize::try_from(scale).ok()?;
    let mut values = Vec::with_capacity(texts.len());
    for i in 0..texts.len() {
        values.push(if texts.is_null(i) {
            0
        } else {
            plain_decimal(texts.value(i), precision, scale_digits).ok()?
        });
    }
    Decimal128Array::new(values.into(), texts.nulls().cloned())
        .with_precision_and_scale(precision, scale)
        .ok()
}

fn parse_date(text: &str, format: Option<&str>) -> Result<i32, String> {
    let date = match format {
        Some(f) => NaiveDate::parse_from_str(text, f)
            .or_else(|_| NaiveDateTime::parse_from_str(text, f).map(|t| t.date()))
            .map_err(|e| format!("`{text}` is not a date in the format `{f}` ({e})"))?,
        None => {
            let head = text.get(..10).unwrap_or(text);
            match iso_date(head) {
                Some(date) => date,
                None => NaiveDate::parse_from_str(head, "%Y-%m-%d")
                    .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD; set `format` for others)"))?,
            }
        }
    };
    Ok(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE)
}

use chrono::Datelike;

/// `YYYY-MM-DD` with exactly these digits, without chrono's format parser (which reads the format
/// string again for every value); anything else, an impossible day included, is `None` and goes to
/// chrono, which gives the same dates and the errors.
fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let year = i32::try_from(number(&b[..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)
}

fn parse_timestamp(text: &str, format: Option<&str>) -> Result<i64, String> {
    if let Some(f) = format {
        return NaiveDateTime::parse_from_str(text, f)
            .map(|t| t.and_utc().timestamp_micros())
            .or_else(|_| {
                NaiveDate::parse_from_str(text, f)
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros())
            })
            .map_err(|e| format!("`{text}` is not a timestamp in the format `{f}` ({e})"));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros());
    }
    Err(format!(
        "`{text}` is not a timestamp (ISO 8601; set `format` for others)"
    ))
}

/// Collects values of one column into an Arrow array.
#[derive(Debug)]
pub enum ColumnBuilder {
    /// Text.
    Text(StringBuilder),
    /// Integer.
    Int(Int64Builder),
    /// Decimal.
    Decimal(Decimal128Builder, u8, i8),
    /// Float.
    Float(Float64Builder),
    /// Boolean.
    Bool(BooleanBuilder),
    /// Date.
    Date(Date32Builder),
    /// Timestamp.
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    /// An empty builder for `kind`.
    pub fn new(kind: ColumnType) -> Self {
        match kind {
            ColumnType::Text => ColumnBuilder::Text(StringBuilder::new()),
            ColumnType::Integer => ColumnBuilder::Int(Int64Builder::new()),
            ColumnType::Decimal { precision, scale } => {
                ColumnBuilder::Decimal(Decimal128Builder::new(), precision, scale)
            }
            ColumnType::Float => ColumnBuilder::Float(Float64Builder::new()),
            ColumnType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::new()),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new()),
        }
    }

    /// Append one value (of the builder's type, or null).
    pub fn push(&mut self, value: &Value) {
        match (self, value) {
            (ColumnBuilder::Text(b), Value::Text(s)) => b.append_value(s),
            (ColumnBuilder::Int(b), Value::Int(v)) => b.append_value(*v),
            (ColumnBuilder::Decimal(b, ..), Value::Decimal(v)) => b.append_value(*v),
            (ColumnBuilder::Float(b), Value::Float(v)) => b.append_value(*v),
            (ColumnBuilder::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Date(b), Value::Date(v)) => b.append_value(*v),
            (ColumnBuilder::Timestamp(b), Value::Timestamp(v)) => b.append_value(*v),
            (ColumnBuilder::Text(b), _) => b.append_null(),
            (ColumnBuilder::Int(b), _) => b.append_null(),
            (ColumnBuilder::Decimal(b, ..), _) => b.append_null(),
            (ColumnBuilder::Float(b), _) => b.append_null(),
            (ColumnBuilder::Bool(b), _) => b.append_null(),
            (ColumnBuilder::Date(b), _) => b.append_null(),
            (ColumnBuilder::Timestamp(b), _) => b.append_null(),
        }
    }

    /// Append a text column's value straight from its source text (empty is null).
    pub fn push_text(&mut self, text: &str) {
        match self {
            ColumnBuilder::Text(b) if !text.is_empty() => b.append_value(text),
            _ => self.push(&Value::Null),
        }
    }

    /// The array collected so far; the builder starts again empty, with room for as many values
    /// (see [`finish_texts_presized`]).
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(b) => Arc::new(finish_texts_presized(b)),
            ColumnBuilder::Int(b) => Arc::new(finish_presized(b, Int64Builder::with_capacity)),
            ColumnBuilder::Decimal(b, p, s) => Arc::new(
                finish_presized(b, Decimal128Builder::with_capacity)
                    .with_precision_and_scale(*p, *s)
                    .expect("precision and scale were validated"),
            ),
            ColumnBuilder::Float(b) => Arc::new(finish_presized(b, Float64Builder::with_capacity)),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(finish_presized(b, Date32Builder::with_capacity)),
            ColumnBuilder::Timestamp(b) => {
                Arc::new(finish_presized(b, TimestampMicrosecondBuilder::with_capacity).with_timezone("UTC"))
            }
        }
    }
}

/// `builder`'s texts, the builder replaced by an empty one with room for as many values and bytes:
/// chunks of one input are alike, and growing from nothing again would copy the column several
/// times over per chunk.
pub(crate) fn finish_texts_presized(builder: &mut StringBuilder) -> StringArray {
    let (rows, bytes) = (builder.len(), builder.values_slice().len());
    std::mem::replace(builder, StringBuilder::with_capacity(rows, bytes)).finish()
}

/// `builder`'s array, the builder replaced by an empty one with room for as many values.
fn finish_presized<T: ArrowPrimitiveType>(
    builder: &mut PrimitiveBuilder<T>,
    with_capacity: fn(usize) -> PrimitiveBuilder<T>,
) -> PrimitiveArray<T> {
    let rows = builder.len();
    std::mem::replace(builder, with_capacity(rows)).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    use crate::entity::{MONEY, RATE};

    fn opts() -> ParseOptions {
        ParseOptions::default()
    }

    #[test]
    fn decimals_are_exact_and_rounded_half_away() {
        assert_eq!(parse("12.345", MONEY, &opts()), Ok(Value::Decimal(1235)));
        assert_eq!(parse("-0.5", MONEY, &opts()), Ok(Value::Decimal(-50)));
        assert_eq!(parse("1,234.5", MONEY, &opts()), Ok(Value::Decimal(123_450)));
        let eu = ParseOptions {
            decimal_comma: true,
            ..opts()
        };
        assert_eq!(parse("1.234,5", MONEY, &eu), Ok(Value::Decimal(123_450)));
        assert_eq!(parse("0.15", RATE, &opts()), Ok(Value::Decimal(1500)));
        assert!(parse("12a", MONEY, &opts()).unwrap_err().contains("not a decimal"));
        assert!(parse("1e3", MONEY, &opts()).is_err());
        assert!(
            parse("123456", RATE, &opts())
                .unwrap_err()
                .contains("more than 5 digits")
        );
    }

    #[test]
    fn plain_decimal_texts_parse_as_arrows_cast_does() {
        use datafusion::arrow::compute::{CastOptions, cast_with_options};
        let plain = [
            Some("12.5"),
            Some("-0.12345"),
            Some("+3"),
            Some(".5"),
            Some("1."),
            Some("0.00005"),
            Some("-0.00005"),
            None,
            Some("99999.99994"),
            Some("12345678901234.123456789"),
        ];
        // The fourteen whole digits of the last text do not fit DECIMAL(9, 4).
        for (precision, scale, texts) in [(9, 4, &plain[..9]), (38, 10, &plain[..]), (18, 0, &plain[..])] {
            let texts = StringArray::from(texts.to_vec());
            let ours = plain_texts_to_decimal(&texts, precision, scale).expect("plain decimals");
            let options = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            let arrows = cast_with_options(&texts, &DataType::Decimal128(precision, scale), &options).unwrap();
            assert_eq!(&ours as &dyn Array, arrows.as_ref(), "({precision}, {scale})");
        }
        let texts = StringArray::from(plain.to_vec());
        assert!(plain_texts_to_decimal(&texts, 9, 4).is_none(), "past the precision");
        let texts = StringArray::from(vec!["99999.99994", "99999.99995"]);
        assert!(
            plain_texts_to_decimal(&texts, 9, 4).is_none(),
            "rounds past the precision"
        );
        for odd in [" 1.5", "1,5", "1e3", "", "-", ".", "1.2.3", "١٢"] {
            let texts = StringArray::from(vec!["1.5", odd]);
            assert!(
                plain_texts_to_decimal(&texts, 9, 4).is_none(),
                "{odd:?} is left to the cast"
            );
        }
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse("1970-01-02", ColumnType::Date, &opts()), Ok(Value::Date(1)));
        let de = ParseOptions {
            format: Some("%d.%m.%Y".into()),
            ..opts()
        };
        assert_eq!(parse("02.01.1970", ColumnType::Date, &de), Ok(Value::Date(1)));
        assert!(
            parse("31.02.2024", ColumnType::Date, &de)
                .unwrap_err()
                .contains("%d.%m.%Y")
        );
        assert_eq!(
            parse("1970-01-01T00:00:01Z", ColumnType::Timestamp, &opts()),
            Ok(Value::Timestamp(1_000_000))
        );
        assert_eq!(
            parse("1970-01-01 00:01:00", ColumnType::Timestamp, &opts()),
            Ok(Value::Timestamp(60_000_000))
        );
        assert_eq!(
            parse("1970-01-02", ColumnType::Timestamp, &opts()),
            Ok(Value::Timestamp(86_400_000_000))
        );
    }

    #[test]
    fn iso_dates_read_without_chrono_agree_with_chrono() {
        for text in [
            "2024-02-29",
            "2023-02-29",
            "1970-01-01",
            "0001-01-01",
            "9999-12-31",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "2024/01/01",
            "2024-01-1x",
            "+024-01-01",
            "2024-01-01T10:00:00",
        ] {
            let head = text.get(..10).unwrap_or(text);
            let chrono = NaiveDate::parse_from_str(head, "%Y-%m-%d").ok();
            if let Some(fast) = iso_date(head) {
                assert_eq!(Some(fast), chrono, "{text}");
            }
            assert_eq!(
                parse_date(text, None).ok(),
                chrono.map(|d| d.num_days_from_ce() - EPOCH_DAYS_FROM_CE),
                "{text}"
            );
        }
        assert_eq!(parse("2024-03-01", ColumnType::Date, &opts()), Ok(Value::Date(19_783)));
    }

    #[test]
    fn integers_and_booleans() {
        assert_eq!(parse("42", ColumnType::Integer, &opts()), Ok(Value::Int(42)));
        assert_eq!(parse("42.0", ColumnType::Integer, &opts()), Ok(Value::Int(42)));
        assert!(parse("4.2", ColumnType::Integer, &opts()).is_err());
        assert_eq!(parse("Yes", ColumnType::Boolean, &opts()), Ok(Value::Bool(true)));
        assert!(parse("maybe", ColumnType::Boolean, &opts()).is_err());
    }
}
