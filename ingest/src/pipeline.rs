//! Pipelines: where rows come from, how their columns map onto a canonical entity, and the rules a
//! row must pass. Declared in TOML (`[[pipelines]]`), so pointing Tributary at another company's
//! export is a mapping, not code.
//!
//! ```toml
//! [[pipelines]]
//! name = "erp_order_lines"
//! files = "erp/sales_order_lines*.csv"      # glob under the landing directory (or the source's folder)
//! format = { kind = "csv", delimiter = "," }
//!
//! [[pipelines.targets]]
//! entity = "order_line"
//! columns.order_id = "order_no"            # shorthand for { from = "order_no" }
//! columns.quantity = { from = "quantity", min = 0 }
//! columns.discount = { expr = "CAST(discount_pct AS DECIMAL(9,4)) / 100" }
//! columns.sku = { from = "sku", references = "product.sku" }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entity::{self, ColumnType, Entity};

/// The mappings for the sample company's exports, used unless the configuration turns them off.
pub const SAMPLE_COMPANY_TOML: &str = include_str!("../pipelines/sample_company.toml");

/// One pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Unique name; used in lineage, the ingest log and `POST /api/v1/ingest/{pipeline}`.
    pub name: String,
    /// A configured source name; `landing` (the default) is the data directory's landing folder.
    #[serde(default = "landing")]
    pub source: String,
    /// Glob of files under the source folder that this pipeline reads (`*`, `?`, `**`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<String>,
    /// Database sources: the table (or view) to pull from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Database sources: the column that only grows (updated_at, or an increasing id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// How the file is laid out; guessed from the extension when absent.
    #[serde(default)]
    pub format: FormatSpec,
    /// The `raw` table rows land in as received; the pipeline name by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_table: Option<String>,
    /// Column types of a plain `raw` table (no targets), by source column; others are inferred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw_types: BTreeMap<String, String>,
    /// Use the targets (mappings) of another pipeline, e.g. a database pull of a table whose
    /// export a file pipeline already maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_of: Option<String>,
    /// Canonical entities fed from each row. Empty: the file lands in `raw` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
}

fn landing() -> String {
    "landing".to_string()
}

/// File layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// csv, whitespace, fixed_width, ndjson or parquet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FormatKind>,
    /// CSV field delimiter (one character; `\t` for tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV quote character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Whether the first line names the columns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Column names when there is no header, or to replace it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Fixed-width column widths in characters; with a header, names come from the header line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub widths: Vec<usize>,
    /// utf-8 (default) or latin1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Gzip-compressed; by default when the name ends in `.gz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<bool>,
    /// Largest field accepted, in bytes; longer fields send their row to quarantine (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_field_bytes: Option<usize>,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// Delimited text.
    Csv,
    /// Columns separated by runs of spaces or tabs.
    Whitespace,
    /// Columns at fixed character positions.
    FixedWidth,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

/// Text encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8; invalid bytes send the row to quarantine.
    #[serde(alias = "utf8")]
    Utf8,
    /// ISO-8859-1, as older ERP systems write.
    #[serde(alias = "iso-8859-1")]
    Latin1,
}

/// One canonical entity fed by a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Canonical entity (customer, product, sales_order, order_line, ...).
    pub entity: String,
    /// Key columns for de-duplication; the entity's key by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Target column -> how to fill it.
    pub columns: BTreeMap<String, ColumnSpec>,
}

/// How one target column is filled and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// Shorthand: the source column of that name.
    From(String),
    /// Full form.
    Full(Box<ColumnRule>),
}

/// The full form of a column mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Source column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A SQL expression over the source columns (as text) and the target columns mapped with `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Type, for columns that are not canonical (canonical columns have theirs).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// chrono format for dates and timestamps (e.g. `%d.%m.%Y`); ISO 8601 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Decimal separator for numbers (`,` in much of Europe); `.` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal_separator: Option<String>,
    /// Trim surrounding whitespace (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<bool>,
    /// Value used when the source is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Reject rows without a value (canonical required columns always are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Smallest allowed number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values allowed (compared after trimming).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Map source values onto canonical ones (e.g. `{ W = "web" }`); unmapped values pass through.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
    /// `entity.column` that must hold this value (checked against staging and this run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

impl ColumnSpec {
    /// The full rule.
    pub fn rule(&self) -> ColumnRule {
        match self {
            ColumnSpec::From(from) => ColumnRule {
                from: Some(from.clone()),
                ..ColumnRule::default()
            },
            ColumnSpec::Full(rule) => (**rule).clone(),
        }
    }
}

/// A pipeline that cannot run, with the pipeline and key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{pipeline}`: {key}: {message}")]
pub struct PipelineError {
    /// Pipeline name.
    pub pipeline: String,
    /// Where in it (`targets[0].columns.quantity`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A target column, resolved against its entity.
#[derive(Debug, Clone)]
pub struct ResolvedColumn {
    /// Target column name.
    pub name: String,
    /// Stored type.
    pub kind: ColumnType,
    /// Whether a row without it is rejected.
    pub required: bool,
    /// The mapping rule.
    pub rule: ColumnRule,
}

/// A target resolved against its entity: every canonical column (mapped or null) plus extra ones.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    /// The entity.
    pub entity: &'static Entity,
    /// Columns in storage order.
    pub columns: Vec<ResolvedColumn>,
    /// Key column names.
    pub key: Vec<String>,
}

impl Pipeline {
    /// The raw table's name.
    pub fn raw_table(&self) -> &str {
        self.raw_table.as_deref().unwrap_or(&self.name)
    }

    /// Check the pipeline and resolve its targets against the canonical entities.
    pub fn resolve(&self) -> Result<Vec<ResolvedTarget>, PipelineError> {
        let fail = |key: String, message: String| PipelineError {
            pipeline: self.name.clone(),
            key,
            message,
        };
        if !valid_table_name(&self.name) {
            return Err(fail(
                "name".into(),
                "use lower-case letters, digits and underscores, starting with a letter".into(),
            ));
        }
        if !valid_table_name(self.raw_table()) {
            return Err(fail(
                "raw_table".into(),
                "use lower-case letters, digits and underscores, starting with a letter".into(),
            ));
        }
        if let Some(d) = &self.format.delimiter
            && delimiter_byte(d).is_none()
        {
            return Err(fail(
                "format.delimiter".into(),
                format!("{d:?} is not one ASCII character"),
            ));
        }
        if let Some(q) = &self.format.quote
            && delimiter_byte(q).is_none()
        {
            return Err(fail("format.quote".into(), format!("{q:?} is not one ASCII character")));
        }
        if self.table.is_some() != self.watermark.is_some() {
            return Err(fail(
                "watermark".into(),
                "a database pipeline names both `table` and `watermark`".into(),
            ));
        }
        if self.format.kind == Some(FormatKind::FixedWidth) && self.format.widths.is_empty() {
            return Err(fail(
                "format.widths".into(),
                "fixed_width needs the column widths".into(),
            ));
        }
        let mut resolved = Vec::with_capacity(self.targets.len());
        for (t, target) in self.targets.iter().enumerate() {
            let at = |k: &str| format!("targets[{t}].{k}");
            let entity = entity::entity(&target.entity).ok_or_else(|| {
                let names: Vec<_> = entity::ENTITIES.iter().map(|e| e.name).collect();
                fail(
                    at("entity"),
                    format!("unknown entity `{}`; one of {}", target.entity, names.join(", ")),
                )
            })?;
            let mut columns = Vec::new();
            for canonical in entity.columns {
                let rule = target.columns.get(canonical.name).map(ColumnSpec::rule);
                if canonical.required && rule.is_none() {
                    return Err(fail(
                        at("columns"),
                        format!("`{}` is required by {} and not mapped", canonical.name, entity.name),
                    ));
                }
                let rule = rule.unwrap_or_default();
                if rule.kind.is_some() {
                    return Err(fail(
                        at(&format!("columns.{}.type", canonical.name)),
                        format!("`{}` is canonical and always {}", canonical.name, canonical.kind),
                    ));
                }
                columns.push(ResolvedColumn {
                    name: canonical.name.to_string(),
                    kind: canonical.kind,
                    required: canonical.required || rule.required == Some(true),
                    rule,
                });
            }
            for (name, spec) in &target.columns {
                if entity.column(name).is_some() {
                    continue;
                }
                let rule = spec.rule();
                if !valid_table_name(name) {
                    return Err(fail(at(&format!("columns.{name}")), "not a valid column name".into()));
                }
                let kind = match &rule.kind {
                    Some(k) => k.parse().map_err(|m| fail(at(&format!("columns.{name}.type")), m))?,
                    None => ColumnType::Text,
                };
                columns.push(ResolvedColumn {
                    name: name.clone(),
                    kind,
                    required: rule.required == Some(true),
                    rule,
                });
            }
            for col in &columns {
                let r = &col.rule;
                let sources = [r.from.is_some(), r.value.is_some(), r.expr.is_some()];
                if sources.iter().filter(|s| **s).count() > 1 {
                    return Err(fail(
                        at(&format!("columns.{}", col.name)),
                        "give one of `from`, `value` or `expr`".into(),
                    ));
                }
                if let Some(reference) = &r.references {
                    let ok = reference
                        .split_once('.')
                        .and_then(|(e, c)| entity::entity(e).and_then(|e| e.column(c)))
                        .is_some();
                    if !ok {
                        return Err(fail(
                            at(&format!("columns.{}.references", col.name)),
                            format!("`{reference}` is not entity.column of a canonical entity"),
                        ));
                    }
                }
                if let Some(sep) = &r.decimal_separator
                    && sep != "."
                    && sep != ","
                {
                    return Err(fail(
                        at(&format!("columns.{}.decimal_separator", col.name)),
                        "use \".\" or \",\"".into(),
                    ));
                }
            }
            let key: Vec<String> = if target.key.is_empty() {
                entity.key.iter().map(|k| k.to_string()).collect()
            } else {
                target.key.clone()
            };
            for k in &key {
                if !columns.iter().any(|c| &c.name == k) {
                    return Err(fail(
                        at("key"),
                        format!("key column `{k}` is not a column of the target"),
                    ));
                }
            }
            resolved.push(ResolvedTarget { entity, columns, key });
        }
        Ok(resolved)
    }

    /// Whether this pipeline reads the file at `relative` (a `/`-separated path under its folder).
    pub fn matches_file(&self, relative: &str) -> bool {
        self.files
            .as_deref()
            .is_some_and(|pattern| glob_match(pattern, relative))
    }
}

/// Parse a list of pipelines from TOML (`[[pipelines]]` tables).
pub fn parse_pipelines(toml_text: &str, origin: &str) -> Result<Vec<Pipeline>, PipelineError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        pipelines: Vec<Pipeline>,
    }
    let file: File = toml::from_str(toml_text).map_err(|e| PipelineError {
        pipeline: origin.to_string(),
        key: "pipelines".into(),
        message: e.to_string(),
    })?;
    Ok(file.pipelines)
}

/// Lower-case letters, digits and underscores, starting with a letter.
pub fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One ASCII character (or `\t`) as a byte.
pub fn delimiter_byte(text: &str) -> Option<u8> {
    match text {
        "\\t" | "\t" => Some(b'\t'),
        s if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        _ => None,
    }
}

/// Glob matching on `/`-separated paths: `*` and `?` stay within one segment, `**` spans segments.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| segments(rest, &s[i..])),
            Some((first, rest)) => s
                .split_first()
                .is_some_and(|(head, tail)| segment(first.as_bytes(), head.as_bytes()) && segments(rest, tail)),
        }
    }
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
            Some((b'?', rest)) => !s.is_empty() && segment(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    segments(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("erp/*.csv", "erp/sales_orders.csv"));
        assert!(!glob_match("erp/*.csv", "erp/x/sales_orders.csv"));
        assert!(glob_match("**/orders_??.csv", "a/b/orders_01.csv"));
        assert!(glob_match("**/orders.csv", "orders.csv"));
        assert!(!glob_match("erp/*.csv", "crm/accounts.csv"));
    }

    #[test]
    fn the_sample_company_pipelines_resolve() {
        let pipelines = parse_pipelines(SAMPLE_COMPANY_TOML, "built-in").unwrap();
        assert!(pipelines.len() >= 15);
        let checked = crate::run::Pipelines::new(pipelines).unwrap();
        let (db, targets) = checked.get("erp_db_sales_orders").unwrap();
        assert_eq!(db.table.as_deref(), Some("erp.sales_orders"));
        assert_eq!(targets[0].entity.name, "sales_order");
    }

    #[test]
    fn a_missing_required_column_is_named() {
        let p: Vec<Pipeline> = parse_pipelines(
            r#"
            [[pipelines]]
            name = "orders"
            files = "*.csv"
            [[pipelines.targets]]
            entity = "sales_order"
            columns.order_id = "no"
            "#,
            "test",
        )
        .unwrap();
        let e = p[0].resolve().unwrap_err();
        assert_eq!(e.key, "targets[0].columns");
        assert!(e.message.contains("`customer_id` is required"), "{e}");
        let p = parse_pipelines(
            "[[pipelines]]\nname = \"x\"\nfiles = \"*\"\nformat = { kind = \"csv\", delimiter = \";;\" }\n",
            "t",
        )
        .unwrap();
        assert_eq!(p[0].resolve().unwrap_err().key, "format.delimiter");
    }
}
