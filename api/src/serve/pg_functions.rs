//! PostgreSQL functions that clients call when they connect and browse, beyond those
//! datafusion-postgres's `pg_catalog` brings: `version()` as PostgreSQL 16, the signed-in user,
//! `current_setting`, `to_regtype`, `json_build_object`, `pg_get_serial_sequence`, and the helper
//! behind `LIKE ... ESCAPE`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::pg::SERVER_VERSION;

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
            let setting = |name: &str| match name.to_ascii_lowercase().as_str() {
                "server_version_num" => Some("160006".to_string()),
                "server_version" => Some(SERVER_VERSION.to_string()),
                "timezone" | "log_timezone" => Some("UTC".to_string()),
                "standard_conforming_strings" => Some("on".to_string()),
                "transaction_read_only" | "default_transaction_read_only" => Some("on".to_string()),
                "client_encoding" | "server_encoding" => Some("UTF8".to_string()),
                "datestyle" => Some("ISO, MDY".to_string()),
                "max_identifier_length" => Some("63".to_string()),
                _ => None,
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
