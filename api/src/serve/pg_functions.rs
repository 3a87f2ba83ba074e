//! PostgreSQL functions that clients call when they connect and browse, beyond those
//! datafusion-postgres's `pg_catalog` brings: `version()` as PostgreSQL 16, the signed-in user,
//! `current_setting`, `to_regtype`, `json_build_object`, `pg_get_serial_sequence`, and the helper
//! behind `LIKE ... ESCAPE`; and `pg_catalog.pg_settings` with the settings clients read.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::pg::SERVER_VERSION;

/// The server's settings, as `current_setting(name)` and `pg_catalog.pg_settings` give them:
/// what clients check before they trust the server (Grafana asks for `server_version_num`,
/// pgjdbc for `max_index_keys` before it lists foreign keys).
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160006"),
    ("TimeZone", "UTC"),
    ("log_timezone", "UTC"),
    ("standard_conforming_strings", "on"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("client_encoding", "UTF8"),
    ("server_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("max_function_args", "100"),
    ("block_size", "8192"),
];

/// `pg_catalog.pg_settings` with [`SETTINGS`] (datafusion-postgres's own view has only
/// `standard_conforming_strings`), the rest of `pg_catalog` as it was.
pub(super) fn register_settings(ctx: &SessionContext) -> datafusion::error::Result<()> {
    use datafusion::arrow::array::{BooleanArray, Int32Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    let Some(catalog) = ctx.catalog("datafusion") else {
        return Ok(());
    };
    let Some(pg_catalog) = catalog.schema("pg_catalog") else {
        return Ok(());
    };
    let text = [
        "name",
        "setting",
        "unit",
        "category",
        "short_desc",
        "extra_desc",
        "context",
        "vartype",
        "source",
    ]
    .into_iter()
    .chain(["min_val", "max_val", "enumvals", "boot_val", "reset_val", "sourcefile"]);
    let mut fields: Vec<Field> = text.map(|name| Field::new(name, DataType::Utf8, true)).collect();
    fields.push(Field::new("sourceline", DataType::Int32, true));
    fields.push(Field::new("pending_restart", DataType::Boolean, true));
    let rows = SETTINGS.len();
    let column = |value: &dyn Fn(&str, &str) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(SETTINGS.iter().map(|(n, v)| value(n, v))))
    };
    let columns: Vec<ArrayRef> = vec![
        column(&|n, _| Some(n.to_string())),
        column(&|_, v| Some(v.to_string())),
        column(&|_, _| None),
        column(&|_, _| Some("Preset Options".into())),
        column(&|_, _| None),
        column(&|_, _| None),
        column(&|_, _| Some("internal".into())),
        column(&|_, _| Some("string".into())),
        column(&|_, _| Some("default".into())),
        column(&|_, _| None),
        column(&|_, _| None),
        column(&|_, _| None),
        column(&|_, v| Some(v.to_string())),
        column(&|_, v| Some(v.to_string())),
        column(&|_, _| None),
        Arc::new(Int32Array::from(vec![None; rows])),
        Arc::new(BooleanArray::from(vec![Some(false); rows])),
    ];
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let settings = Arc::new(MemTable::try_new(schema, vec![vec![batch]])?);
    catalog.register_schema("pg_catalog", Arc::new(WithSettings { pg_catalog, settings }))?;
    Ok(())
}

/// A `pg_catalog` schema whose `pg_settings` is ours.
#[derive(Debug)]
struct WithSettings {
    pg_catalog: Arc<dyn datafusion::catalog::SchemaProvider>,
    settings: Arc<dyn datafusion::catalog::TableProvider>,
}

#[async_trait::async_trait]
impl datafusion::catalog::SchemaProvider for WithSettings {
    fn table_names(&self) -> Vec<String> {
        self.pg_catalog.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if name == "pg_settings" {
            return Ok(Some(self.settings.clone()));
        }
        self.pg_catalog.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        name == "pg_settings" || self.pg_catalog.table_exist(name)
    }
}

/// The body of a scalar function made with `create_udf`.
type Body = Arc<dyn Fn(&[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> + Send + Sync>;

fn as_text(value: impl Into<String>) -> Body {
    let value = value.into();
    Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.clone())))))
}

/// Register the functions in a connection's session, for `user`.
pub fn register(ctx: &SessionContext, user: &str) {
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        as_text(format!(
            "PostgreSQL {SERVER_VERSION} (Tributary {}, on Apache DataFusion)",
            env!("CARGO_PKG_VERSION")
        )),
    ));
    // current_setting(name): what clients check before they trust the server (Grafana asks
    // for server_version_num).
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let setting = |name: &str| {
                SETTINGS
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.to_string())
            };
            each_text(args, |name| ScalarValue::Utf8(name.and_then(setting)))
        }),
    ));
    // to_regtype(name): psycopg asks it for extension types (SQLAlchemy looks for hstore on
    // connect); the built-in types answer with their oid, anything else with NULL.
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let oid = |name: &str| -> Option<i32> {
                let name = name.trim().trim_start_matches("pg_catalog.").to_ascii_lowercase();
                Some(match name.as_str() {
                    "bool" | "boolean" => 16,
                    "bytea" => 17,
                    "int8" | "bigint" => 20,
                    "int2" | "smallint" => 21,
                    "int4" | "integer" | "int" => 23,
                    "text" => 25,
                    "oid" => 26,
                    "json" => 114,
                    "float4" | "real" => 700,
                    "float8" | "double precision" => 701,
                    "varchar" | "character varying" => 1043,
                    "date" => 1082,
                    "time" => 1083,
                    "timestamp" => 1114,
                    "timestamptz" => 1184,
                    "interval" => 1186,
                    "numeric" | "decimal" => 1700,
                    "uuid" => 2950,
                    "jsonb" => 3802,
                    _ => return None,
                })
            };
            each_text(args, |name| ScalarValue::Int32(name.and_then(oid)))
        }),
    ));
    ctx.register_udf(create_udf(
        "pg_like_pattern",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let patterns = datafusion::common::cast::as_string_array(&arrays[0])?;
            let escapes = datafusion::common::cast::as_string_array(&arrays[1])?;
            let out: datafusion::arrow::array::StringArray = patterns
                .iter()
                .zip(escapes.iter())
                .map(|(p, e)| Some(like_pattern(p?, e?)))
                .collect();
            if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            } else {
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }),
    ));
    for name in ["session_user", "current_user", "user"] {
        ctx.register_udf(create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            as_text(user.to_string()),
        ));
    }
    // Nothing here is a sequence, and everything a role can list it can see.
    ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(
        "pg_get_serial_sequence",
        ScalarValue::Utf8(None),
    )));
    // No table has an index, so there is no index definition to print.
    for name in [
        "col_description",
        "obj_description",
        "shobj_description",
        "pg_get_indexdef",
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(name, ScalarValue::Utf8(None))));
    }
    for name in [
        "pg_collation_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(
            name,
            ScalarValue::Boolean(Some(true)),
        )));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::new()));
}

/// A LIKE pattern with escape character `escape` as one with the backslash.
fn like_pattern(pattern: &str, escape: &str) -> String {
    let Some(escape) = escape.chars().next() else {
        return pattern.to_string();
    };
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push('\\');
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// A function of one text argument, applied value by value; a scalar argument gives a scalar.
fn each_text(
    args: &[ColumnarValue],
    f: impl Fn(Option<&str>) -> ScalarValue,
) -> datafusion::error::Result<ColumnarValue> {
    let scalar = matches!(args[0], ColumnarValue::Scalar(_));
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let texts = datafusion::common::cast::as_string_array(&arrays[0])?;
    let mut values: Vec<ScalarValue> = texts.iter().map(&f).collect();
    if scalar && !values.is_empty() {
        return Ok(ColumnarValue::Scalar(values.swap_remove(0)));
    }
    if values.is_empty() {
        let null = f(None);
        return Ok(ColumnarValue::Array(datafusion::arrow::array::new_empty_array(
            &null.data_type(),
        )));
    }
    Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
}

/// A function of any arguments with one answer.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl Constant {
    fn new(name: &'static str, value: ScalarValue) -> Self {
        Self {
            name,
            value,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// `json_build_object(key, value, ...)` as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.clone().into_array(rows))
            .collect::<datafusion::error::Result<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = datafusion::arrow::util::display::array_value_to_string(&pair[0], row)?;
                let value = match pair.get(1) {
                    Some(v) if !v.is_null(row) => {
                        serde_json::Value::String(datafusion::arrow::util::display::array_value_to_string(v, row)?)
                    }
                    _ => serde_json::Value::Null,
                };
                object.insert(key, value);
            }
            out.push(Some(serde_json::Value::Object(object).to_string()));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_take_the_backslash() {
        assert_eq!(super::like_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(super::like_pattern("a\\b//c", "/"), "a\\\\b\\/c");
    }
}
