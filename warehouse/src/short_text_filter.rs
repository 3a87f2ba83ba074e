//! A filter's predicate evaluated conjunct by conjunct, where a comparison of a text column with
//! a short literal (`status <> 'cancelled'`) is answered from the column's string views alone.
//!
//! A string view of at most 12 bytes holds the whole text: its length in the low 32 bits, the
//! bytes above them. Two texts of at most 12 bytes are equal exactly when those 32 + 8 × length
//! bits are, so `column = 'short'` is one masked 128-bit comparison per row, which the compiler
//! vectorises; longer values differ in the length bits and never match. Arrow's comparison
//! kernel looks at each view's length, then its inline bytes or its buffer, row by row: measured
//! (perf, release) at 7-10% of the CPU of "return rate by category", "top 20 customers" and
//! "average order value by channel and year", the queries that filter ten million order lines
//! on their status.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, DictionaryArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::datatypes::{DataType, Int32Type, Schema};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};

/// A predicate split at its `AND`s, each part evaluated on its own and the verdicts combined.
#[derive(Debug)]
pub(crate) struct ConjunctFilter {
    conjuncts: Vec<Conjunct>,
}

#[derive(Debug)]
enum Conjunct {
    /// `column = 'text'` (`equal`) or `column <> 'text'` over a string-view column, the text at
    /// most 12 bytes: `view` is the literal's view, `mask` its length and bytes.
    ShortText {
        column: usize,
        view: u128,
        mask: u128,
        equal: bool,
    },
    /// Any other part, evaluated by DataFusion.
    Expr(Arc<dyn PhysicalExpr>),
}

impl ConjunctFilter {
    /// The conjuncts of `predicate` over rows of `schema`, when at least one is a short text
    /// comparison; otherwise `None`, and the predicate is best evaluated whole.
    pub(crate) fn of(predicate: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Self> {
        let conjuncts: Vec<Conjunct> = split_conjunction(predicate)
            .into_iter()
            .map(|part| short_text(part, schema).unwrap_or_else(|| Conjunct::Expr(part.clone())))
            .collect();
        conjuncts
            .iter()
            .any(|c| matches!(c, Conjunct::ShortText { .. }))
            .then_some(ConjunctFilter { conjuncts })
    }

    /// The columns only short text comparisons read: those this filter can read as dictionary
    /// keys as well as string views (see `narrow_scan`).
    pub(crate) fn short_text_only_columns(&self) -> Vec<usize> {
        let mut elsewhere = Vec::new();
        for conjunct in &self.conjuncts {
            if let Conjunct::Expr(expr) = conjunct {
                elsewhere.extend(collect_columns(expr).iter().map(|c| c.index()));
            }
        }
        let mut columns: Vec<usize> = self
            .conjuncts
            .iter()
            .filter_map(|conjunct| match conjunct {
                Conjunct::ShortText { column, .. } if !elsewhere.contains(column) => Some(*column),
                _ => None,
            })
            .collect();
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// The rows of `batch` that every conjunct passes (a null verdict rejects, as in
    /// `FilterExec`). Once no row is left, the remaining conjuncts are not evaluated, as
    /// DataFusion skips the right side of an `AND` whose left rejects the whole batch.
    pub(crate) fn passing(&self, batch: &RecordBatch) -> Result<BooleanBuffer> {
        let rows = batch.num_rows();
        let mut passing: Option<BooleanBuffer> = None;
        for (part, conjunct) in self.conjuncts.iter().enumerate() {
            let verdict = match conjunct {
                Conjunct::ShortText {
                    column,
                    view,
                    mask,
                    equal,
                } => {
                    let array = batch.column(*column);
                    if let Some(keys) = array.as_dictionary_opt::<Int32Type>() {
                        compare_dictionary(keys, *view, *equal)?
                    } else {
                        let Some(text) = array.as_string_view_opt() else {
                            return internal_err!(
                                "column {column} of a short text filter holds string views or a dictionary"
                            );
                        };
                        let views = text.views().inner().typed_data::<u64>();
                        let matches = compare_views(&views[..2 * rows], *view, *mask, *equal);
                        match text.nulls() {
                            Some(nulls) => &matches & nulls.inner(),
                            None => matches,
                        }
                    }
                }
                Conjunct::Expr(expr) => passing_rows(expr, batch)?,
            };
            let combined = match passing {
                Some(before) => &before & &verdict,
                None => verdict,
            };
            // The last part's verdict is counted by the caller; only an earlier one's here.
            let none_left = part + 1 < self.conjuncts.len() && combined.count_set_bits() == 0;
            passing = Some(combined);
            if none_left {
                break;
            }
        }
        Ok(passing.unwrap_or_else(|| BooleanBuffer::new_set(rows)))
    }
}

/// The rows of `batch` for which `predicate` is true (null rejects, as in `FilterExec`).
pub(crate) fn passing_rows(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<BooleanBuffer> {
    let verdict = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let Some(verdict) = verdict.as_boolean_opt() else {
        return internal_err!("a filter's predicate is boolean: {predicate}");
    };
    // Not arrow's `prep_null_mask_filter`: it expects nulls and panics without them.
    Ok(match verdict.nulls() {
        Some(nulls) => verdict.values() & nulls.inner(),
        None => verdict.values().clone(),
    })
}

/// `column = 'literal'` or `<>`, either way round, over a string-view column of `schema`, the
/// literal at most 12 bytes.
fn short_text(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Conjunct> {
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    let equal = match binary.op() {
        Operator::Eq => true,
        Operator::NotEq => false,
        _ => return None,
    };
    let (column, literal) = match (
        binary.left().downcast_ref::<Column>(),
        binary.right().downcast_ref::<Literal>(),
    ) {
        (Some(column), Some(literal)) => (column, literal),
        _ => (
            binary.right().downcast_ref::<Column>()?,
            binary.left().downcast_ref::<Literal>()?,
        ),
    };
    if schema.fields().get(column.index())?.data_type() != &DataType::Utf8View {
        return None;
    }
    let text = match literal.value() {
        ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text)) => text,
        _ => return None,
    };
    let (view, mask) = inline_view(text.as_bytes())?;
    Some(Conjunct::ShortText {
        column: column.index(),
        view,
        mask,
        equal,
    })
}

/// The string view of a text of at most 12 bytes, and the mask of its length and bytes.
pub(crate) fn inline_view(bytes: &[u8]) -> Option<(u128, u128)> {
    if bytes.len() > 12 {
        return None;
    }
    let mut data = [0u8; 16];
    data[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    data[4..4 + bytes.len()].copy_from_slice(bytes);
    let bits = 32 + 8 * bytes.len() as u32;
    let mask = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    Some((u128::from_le_bytes(data), mask))
}

/// Whether each row of a text column read as dictionary keys (see `narrow_scan`) is the text whose
/// inline view is `view` (or is not, unless `equal`): the verdict is worked out once per value of
/// the dictionary (a handful: `status`), then looked up by each row's key. A null value or key
/// rejects.
fn compare_dictionary(keys: &DictionaryArray<Int32Type>, view: u128, equal: bool) -> Result<BooleanBuffer> {
    let Some(values) = keys.values().as_string_opt::<i32>() else {
        return internal_err!("a text column read as a dictionary has text values");
    };
    let verdicts: Vec<bool> = (0..values.len())
        .map(|v| {
            let same = inline_view(values.value(v).as_bytes()).is_some_and(|(value, _)| value == view);
            values.is_valid(v) && same == equal
        })
        .collect();
    let codes = keys.keys().values();
    let matches = BooleanBuffer::collect_bool(codes.len(), |row| {
        verdicts.get(codes[row] as usize).copied().unwrap_or(false)
    });
    Ok(match keys.nulls() {
        Some(nulls) => &matches & nulls.inner(),
        None => matches,
    })
}

/// Whether each view (`views`: the views' two 64-bit halves in turn), masked, is `view` (or is
/// not, unless `equal`), 64 rows to a word. A byte per row first, a loop the compiler vectorises;
/// then eight bytes at a time into eight bits by one multiplication. Setting each bit by a shift
/// of its own, the obvious loop, took three times as long (0.9 against 0.24 ns a row over a
/// batch of 8,192 rows in the CPU's cache, release, native target).
fn compare_views(views: &[u64], view: u128, mask: u128, equal: bool) -> BooleanBuffer {
    let (view_low, view_high) = (view as u64, (view >> 64) as u64);
    let (mask_low, mask_high) = (mask as u64, (mask >> 64) as u64);
    let rows = views.len() / 2;
    let mut words = Vec::with_capacity(rows.div_ceil(64));
    let mut bytes = [0u8; 64];
    for chunk in views.chunks(128) {
        let chunk_rows = chunk.len() / 2;
        for (byte, halves) in bytes.iter_mut().zip(chunk.chunks_exact(2)) {
            let same = (((halves[0] & mask_low) ^ view_low) | ((halves[1] & mask_high) ^ view_high)) == 0;
            *byte = u8::from(same == equal);
        }
        let mut word = 0u64;
        for (i, eight) in bytes[..chunk_rows.div_ceil(8) * 8].chunks_exact(8).enumerate() {
            let eight = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
            // Byte k (0 or 1) lands on bit 56 + k of the product and nothing else reaches bits
            // 56 to 63: the byte's bits moved to one byte.
            word |= (eight.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * i);
        }
        if chunk_rows < 64 {
            // The bytes past the batch's last row are an earlier chunk's.
            word &= (1u64 << chunk_rows) - 1;
        }
        words.push(word);
    }
    BooleanBuffer::new(Buffer::from_vec(words), 0, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    /// Texts around the 12-byte boundary, a prefix and an extension of the literal, an empty
    /// text and nulls, in more rows than one 64-bit word.
    fn batch() -> RecordBatch {
        let texts = [
            Some("cancelled"),
            Some("cancelle"),
            Some("cancelledx"),
            None,
            Some(""),
            Some("shipped"),
            Some("twelve bytes"),
            Some("thirteen byte"),
            Some("a text well past twelve bytes"),
        ];
        let status: StringViewArray = (0..150).map(|row| texts[row % texts.len()]).collect();
        let amount = Int64Array::from_iter_values((0..150).map(|row| row as i64));
        let schema = Schema::new(vec![
            Field::new("status", DataType::Utf8View, true),
            Field::new("amount", DataType::Int64, false),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(status), Arc::new(amount)]).unwrap()
    }

    /// Arrow's own verdict on `predicate`, a null rejecting.
    fn arrow_verdict(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Vec<bool> {
        let verdict = predicate.evaluate(batch).unwrap().into_array(batch.num_rows()).unwrap();
        let verdict: &BooleanArray = verdict.as_boolean();
        verdict.iter().map(|v| v == Some(true)).collect()
    }

    #[test]
    fn answers_as_arrow_does() {
        let batch = batch();
        let schema = batch.schema();
        let mut checked = 0;
        for text in ["cancelled", "", "twelve bytes", "cancelle", "shipped"] {
            for op in [Operator::Eq, Operator::NotEq] {
                let status = col("status", &schema).unwrap();
                let literal = lit(ScalarValue::Utf8View(Some(text.into())));
                let sides = [(status.clone(), literal.clone()), (literal, status)];
                for (left, right) in sides {
                    let compare = binary(left, op, right, &schema).unwrap();
                    let amount_even = binary(
                        binary(col("amount", &schema).unwrap(), Operator::Modulo, lit(2i64), &schema).unwrap(),
                        Operator::Eq,
                        lit(0i64),
                        &schema,
                    )
                    .unwrap();
                    for predicate in [
                        compare.clone(),
                        binary(compare, Operator::And, amount_even, &schema).unwrap(),
                    ] {
                        let filter = ConjunctFilter::of(&predicate, &schema).expect("a short text comparison");
                        // The whole batch and a slice of it (views from an offset).
                        for rows in [batch.clone(), batch.slice(7, 120)] {
                            let ours: Vec<bool> = filter.passing(&rows).unwrap().iter().collect();
                            assert_eq!(ours, arrow_verdict(&predicate, &rows), "{predicate}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 40);
        // Counted by hand: 150 rows cycle through 9 texts, "cancelled" at rows 0, 9, ..., 144
        // (17 rows), nulls at rows 3, 12, ..., 147 (17 rows): `<>` passes the 116 others.
        let predicate = binary(
            col("status", &schema).unwrap(),
            Operator::NotEq,
            lit("cancelled"),
            &schema,
        )
        .unwrap();
        let passing = ConjunctFilter::of(&predicate, &schema)
            .unwrap()
            .passing(&batch)
            .unwrap();
        assert_eq!(passing.count_set_bits(), 150 - 17 - 17);
    }

    /// Batches of 0 to 130 rows (whole and partial words), each verdict against the rows' texts.
    #[test]
    fn packs_every_row_of_any_batch_length() {
        let texts = ["open", "cancelled", "", "cancelled!", "shipped"];
        let (view, mask) = inline_view(b"cancelled").unwrap();
        for rows in [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 130] {
            let status: StringViewArray = (0..rows).map(|row| Some(texts[row * 7 % 5])).collect();
            let views = status.views().inner().typed_data::<u64>();
            for equal in [true, false] {
                let verdict = compare_views(views, view, mask, equal);
                assert_eq!(verdict.len(), rows);
                let expected: Vec<bool> = (0..rows)
                    .map(|row| (texts[row * 7 % 5] == "cancelled") == equal)
                    .collect();
                assert_eq!(verdict.iter().collect::<Vec<_>>(), expected, "{rows} rows");
            }
        }
    }

    #[test]
    fn leaves_long_texts_and_other_comparisons_to_datafusion() {
        let batch = batch();
        let schema = batch.schema();
        let status = || col("status", &schema).unwrap();
        let long = binary(status(), Operator::Eq, lit("thirteen byte"), &schema).unwrap();
        let less = binary(status(), Operator::Lt, lit("c"), &schema).unwrap();
        assert!(ConjunctFilter::of(&long, &schema).is_none());
        assert!(ConjunctFilter::of(&less, &schema).is_none());
    }

    #[test]
    fn stops_once_no_row_is_left() {
        let batch = batch();
        let schema = batch.schema();
        // No row is "absent"; the second conjunct would fail on every row (a text cast to a number).
        let none = binary(col("status", &schema).unwrap(), Operator::Eq, lit("absent"), &schema).unwrap();
        let failing = binary(
            datafusion::physical_expr::expressions::cast(col("status", &schema).unwrap(), &schema, DataType::Int64)
                .unwrap(),
            Operator::Gt,
            lit(0i64),
            &schema,
        )
        .unwrap();
        assert!(failing.evaluate(&batch).is_err());
        let predicate = binary(none, Operator::And, failing, &schema).unwrap();
        let passing = ConjunctFilter::of(&predicate, &schema)
            .unwrap()
            .passing(&batch)
            .unwrap();
        assert_eq!(passing.count_set_bits(), 0);
    }
}
