//! From query results to the numeric matrix linfa takes: numbers (and booleans, decimals, dates)
//! become one column each, with missing values filled by the training median and flagged in a
//! column of their own; text becomes one column per frequent value (one-hot, the rest as
//! `other`). The encoding is learnt on the training rows and stored with the model, so scoring
//! encodes new rows exactly as training did.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Text values kept as their own column; rarer ones share `other`.
const MAX_LEVELS: usize = 20;

/// Why rows could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum DesignError {
    /// A column the model needs is not in the rows.
    #[error("column {0} is missing from the query result")]
    MissingColumn(String),
    /// A column has a type that cannot be a feature.
    #[error("column {column} has type {kind}, which cannot be a feature (use numbers, booleans, dates or text)")]
    Unsupported {
        /// The column.
        column: String,
        /// Its type.
        kind: String,
    },
    /// The label column has a value that is not a yes/no.
    #[error("row {row}: label column {column} holds {value:?}; a label must be true/false, 1/0 or yes/no")]
    BadLabel {
        /// Row number (1-based) in the query result.
        row: usize,
        /// The label column.
        column: String,
        /// What it held.
        value: String,
    },
    /// Arrow could not convert a column.
    #[error("column {column}: {message}")]
    Convert {
        /// The column.
        column: String,
        /// Arrow's message.
        message: String,
    },
}

/// How one source column becomes feature columns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// A number; missing values take `fill` and, when training saw any, set `<name>_missing`.
    Numeric {
        /// Source column.
        column: String,
        /// Training median.
        fill: f64,
        /// Whether a missing-value indicator column follows.
        missing_indicator: bool,
    },
    /// Text, one indicator column per level and one for anything else (including missing).
    Category {
        /// Source column.
        column: String,
        /// Kept values, most frequent first.
        levels: Vec<String>,
    },
}

/// The learnt encoding of a whole row.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Design {
    /// One entry per source column, in the matrix's order.
    pub encodings: Vec<Encoding>,
}

/// One source column, read as numbers or as text.
enum Values {
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// A column of all batches as one array.
fn column(batches: &[RecordBatch], name: &str) -> Result<std::sync::Arc<dyn Array>, DesignError> {
    let parts = batches
        .iter()
        .map(|b| {
            b.column_by_name(name)
                .map(|c| c.as_ref())
                .ok_or_else(|| DesignError::MissingColumn(name.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(DesignError::MissingColumn(name.to_string()));
    }
    concat(&parts).map_err(|e| DesignError::Convert {
        column: name.to_string(),
        message: e.to_string(),
    })
}

fn read(batches: &[RecordBatch], name: &str) -> Result<Values, DesignError> {
    let array = column(batches, name)?;
    let convert = |e: datafusion::arrow::error::ArrowError| DesignError::Convert {
        column: name.to_string(),
        message: e.to_string(),
    };
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let text = cast(&array, &DataType::Utf8).map_err(convert)?;
            let text = text.as_string::<i32>();
            Ok(Values::Text(text.iter().map(|v| v.map(str::to_string)).collect()))
        }
        DataType::Timestamp(_, _) => {
            // Timestamps as fractional days since 1970, like dates.
            let micros = cast(
                &array,
                &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
            )
            .map_err(convert)?;
            let micros = cast(&micros, &DataType::Int64).map_err(convert)?;
            let numbers = cast(&micros, &DataType::Float64).map_err(convert)?;
            Ok(Values::Numbers(
                numbers
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| v / 86_400e6))
                    .collect(),
            ))
        }
        DataType::Date32 | DataType::Date64 => {
            // Dates as day numbers since 1970, so they are numbers a model can use.
            let days = cast(&array, &DataType::Date32).map_err(convert)?;
            let days = cast(&days, &DataType::Int32).map_err(convert)?;
            let numbers = cast(&days, &DataType::Float64).map_err(convert)?;
            Ok(Values::Numbers(numbers.as_primitive::<Float64Type>().iter().collect()))
        }
        kind if kind.is_numeric() || *kind == DataType::Boolean => {
            let numbers = cast(&array, &DataType::Float64).map_err(convert)?;
            Ok(Values::Numbers(numbers.as_primitive::<Float64Type>().iter().collect()))
        }
        kind => Err(DesignError::Unsupported {
            column: name.to_string(),
            kind: kind.to_string(),
        }),
    }
}

/// The median of the present values (0 when there are none).
fn median(values: &[Option<f64>]) -> f64 {
    let mut present: Vec<f64> = values.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    if present.is_empty() {
        return 0.0;
    }
    present.sort_by(f64::total_cmp);
    let mid = present.len() / 2;
    if present.len().is_multiple_of(2) {
        (present[mid - 1] + present[mid]) / 2.0
    } else {
        present[mid]
    }
}

impl Design {
    /// Learn the encoding of every column of `batches` except `exclude` (keys, labels) and the
    /// lineage columns ingest adds to raw tables (`_source`, `_row`, ...: names starting with `_`),
    /// which say where a row came from, not what the customer did.
    pub fn learn(batches: &[RecordBatch], exclude: &[&str]) -> Result<Self, DesignError> {
        let Some(first) = batches.first() else {
            return Ok(Self::default());
        };
        let mut encodings = Vec::new();
        for field in first.schema().fields() {
            let name = field.name();
            if name.starts_with('_') || exclude.iter().any(|e| e.eq_ignore_ascii_case(name)) {
                continue;
            }
            match read(batches, name)? {
                Values::Numbers(values) => encodings.push(Encoding::Numeric {
                    column: name.clone(),
                    fill: median(&values),
                    missing_indicator: values.iter().any(|v| v.is_none_or(|v| !v.is_finite())),
                }),
                Values::Text(values) => {
                    let mut counts: HashMap<&str, usize> = HashMap::new();
                    for v in values.iter().flatten() {
                        *counts.entry(v.as_str()).or_default() += 1;
                    }
                    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
                    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    encodings.push(Encoding::Category {
                        column: name.clone(),
                        levels: levels
                            .into_iter()
                            .take(MAX_LEVELS)
                            .map(|(l, _)| l.to_string())
                            .collect(),
                    });
                }
            }
        }
        Ok(Self { encodings })
    }

    /// The feature columns' names, in the matrix's order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for encoding in &self.encodings {
            match encoding {
                Encoding::Numeric {
                    column,
                    missing_indicator,
                    ..
                } => {
                    names.push(column.clone());
                    if *missing_indicator {
                        names.push(format!("{column}_missing"));
                    }
                }
                Encoding::Category { column, levels } => {
                    names.extend(levels.iter().map(|l| format!("{column}={l}")));
                    names.push(format!("{column}=other"));
                }
            }
        }
        names
    }

    /// The source column each feature column comes from (for reasons in business terms).
    pub fn feature_sources(&self) -> Vec<String> {
        let mut sources = Vec::new();
        for encoding in &self.encodings {
            match encoding {
                Encoding::Numeric {
                    column,
                    missing_indicator,
                    ..
                } => sources.extend(std::iter::repeat_n(column.clone(), 1 + usize::from(*missing_indicator))),
                Encoding::Category { column, levels } => {
                    sources.extend(std::iter::repeat_n(column.clone(), levels.len() + 1))
                }
            }
        }
        sources
    }

    /// Encode `batches` (which must hold every source column) as a rows x features matrix.
    pub fn matrix(&self, batches: &[RecordBatch]) -> Result<Array2<f64>, DesignError> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let width = self.feature_names().len();
        let mut matrix = Array2::<f64>::zeros((rows, width));
        let mut at = 0;
        for encoding in &self.encodings {
            match encoding {
                Encoding::Numeric {
                    column,
                    fill,
                    missing_indicator,
                } => {
                    let values = match read(batches, column)? {
                        Values::Numbers(v) => v,
                        Values::Text(_) => {
                            return Err(DesignError::Unsupported {
                                column: column.clone(),
                                kind: "text where training saw numbers".into(),
                            });
                        }
                    };
                    for (row, value) in values.iter().enumerate() {
                        match value.filter(|v| v.is_finite()) {
                            Some(v) => matrix[[row, at]] = v,
                            None => {
                                matrix[[row, at]] = *fill;
                                if *missing_indicator {
                                    matrix[[row, at + 1]] = 1.0;
                                }
                            }
                        }
                    }
                    at += 1 + usize::from(*missing_indicator);
                }
                Encoding::Category { column, levels } => {
                    let values = match read(batches, column)? {
                        Values::Text(v) => v,
                        Values::Numbers(v) => v.into_iter().map(|n| n.map(|n| n.to_string())).collect(),
                    };
                    for (row, value) in values.iter().enumerate() {
                        let level = value
                            .as_deref()
                            .and_then(|v| levels.iter().position(|l| l == v))
                            .unwrap_or(levels.len());
                        matrix[[row, at + level]] = 1.0;
                    }
                    at += levels.len() + 1;
                }
            }
        }
        Ok(matrix)
    }
}

/// Read a yes/no label column: booleans, 1/0 numbers, or text true/false, yes/no, 1/0.
pub fn labels(batches: &[RecordBatch], name: &str) -> Result<Vec<bool>, DesignError> {
    let bad = |row: usize, value: String| DesignError::BadLabel {
        row: row + 1,
        column: name.to_string(),
        value,
    };
    match read(batches, name)? {
        Values::Numbers(values) => values
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                Some(1.0) => Ok(true),
                Some(0.0) => Ok(false),
                other => Err(bad(row, format!("{other:?}"))),
            })
            .collect(),
        Values::Text(values) => values
            .into_iter()
            .enumerate()
            .map(
                |(row, v)| match v.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                    Some("true" | "yes" | "1" | "y" | "t") => Ok(true),
                    Some("false" | "no" | "0" | "n" | "f") => Ok(false),
                    _ => Err(bad(row, v.unwrap_or_default())),
                },
            )
            .collect(),
    }
}

/// Read a key column as text (customer keys may be numbers or ids).
pub fn keys(batches: &[RecordBatch], name: &str) -> Result<Vec<String>, DesignError> {
    let array = column(batches, name)?;
    let text = cast(&array, &DataType::Utf8).map_err(|e| DesignError::Convert {
        column: name.to_string(),
        message: e.to_string(),
    })?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}
