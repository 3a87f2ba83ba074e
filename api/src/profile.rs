//! `tributary profile CUSTOMER`: one customer's 7P profile, from the same function the HTTP API
//! serves it with.

use serde_json::Value;

use crate::cli::{OutputFormat, ProfileArgs};
use crate::config::Config;

/// Print the profile, one section per P.
pub async fn profile(config: &Config, args: ProfileArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let profile = tributary_warehouse::profile::profile(&warehouse, &args.customer).await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&profile)?),
        OutputFormat::Table => {
            // JSON objects keep keys sorted; print in the order of the seven P's instead.
            for (section, columns) in tributary_warehouse::profile::SECTIONS {
                println!("{}", section.to_uppercase());
                for column in *columns {
                    let value = profile
                        .get(*section)
                        .and_then(|s| s.get(*column))
                        .unwrap_or(&Value::Null);
                    println!("  {column:<28} {}", show(value));
                }
            }
            println!("CATEGORY MIX");
            for row in profile
                .get("category_mix")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let field = |k: &str| row.get(k).map(show).unwrap_or_default();
                println!(
                    "  {:<28} {:>6} orders {:>14} net sales {:>7} share",
                    field("category"),
                    field("orders"),
                    field("net_sales"),
                    field("share")
                );
            }
        }
    }
    Ok(())
}

/// A value as a person reads it: text unquoted, numbers to at most four places, unknown as "-".
fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        // Up to four places, trailing zeros dropped: 587.98, 0.3539, 85.
        Value::Number(n) if n.is_f64() => {
            let text = format!("{:.4}", n.as_f64().unwrap_or_default());
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        other => other.to_string(),
    }
}
