//! One customer's 7P profile: the `marts.customer_7p` row, grouped by P, with the category mix
//! behind the Product P. `tributary profile` prints it; the HTTP API serves the same value.

use serde_json::{Map, Value};

use crate::engine::{QueryError, Warehouse, json_rows as json};

/// The seven P's and the `customer_7p` columns that belong to each, in the order they print.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "customer",
        &[
            "customer_key",
            "crm_account_id",
            "erp_customer_id",
            "name",
            "segment",
            "industry",
            "country",
            "region",
        ],
    ),
    (
        "profiling",
        &[
            "rfm_code",
            "rfm_segment",
            "first_purchase",
            "last_purchase",
            "preferred_channel",
        ],
    ),
    (
        "persistency",
        &[
            "tenure_days",
            "frequency",
            "recency",
            "t",
            "monetary_value",
            "active_months",
            "gap_variation",
            "active_last_90_days",
        ],
    ),
    (
        "profitability",
        &[
            "net_sales",
            "gross_margin",
            "gross_margin_rate",
            "cost_to_serve",
            "contribution_margin",
        ],
    ),
    (
        "performance",
        &[
            "orders",
            "average_order_value",
            "orders_per_month",
            "return_rate",
            "days_sales_outstanding",
            "late_payments",
        ],
    ),
    (
        "prospecting",
        &[
            "expected_orders_next_90d",
            "expected_revenue_next_90d",
            "growth_trend",
            "weighted_pipeline",
        ],
    ),
    ("product", &["top_category", "top_category_share", "categories_bought"]),
    (
        "promotion",
        &[
            "campaign_touches",
            "campaign_response_rate",
            "campaign_conversions",
            "campaign_revenue",
        ],
    ),
];

/// Why no single profile could be given.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No customer has that key, id, email or name.
    #[error("no customer matches {0:?} (give a customer_key, key:customer_key, a CRM or ERP id, an email or a name)")]
    NotFound(String),
    /// More than one customer has that name.
    #[error("{query:?} matches {} customers: {}", .candidates.len(), .candidates.join("; "))]
    Ambiguous {
        /// What was asked.
        query: String,
        /// `key:customer_key name (crm id / erp id)` of each.
        candidates: Vec<String>,
    },
    /// The marts are missing or a query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// An `ml` table, the columns a profile takes from it, and the section each goes to.
type ModelView = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// A customer's 7P profile: one JSON object per section of [`SECTIONS`], plus `category_mix`.
pub type Profile = Map<String, Value>;

/// The profile of the customer `who` is: a customer_key, a CRM account id, an ERP customer number,
/// an email, or a name (exact, ignoring case). Keys are small numbers, as ERP customer numbers
/// often are: `key:17` names customer_key 17 alone, where `17` may also be ERP customer 17.
pub async fn profile(warehouse: &Warehouse, who: &str) -> Result<Profile, ProfileError> {
    let who = who.trim();
    let text = who.replace('\'', "''");
    let only_key = who.strip_prefix("key:").and_then(|k| k.trim().parse::<i64>().ok());
    let condition = match only_key {
        Some(key) => format!("p.customer_key = {key}"),
        None => {
            let by_key = who
                .parse::<i64>()
                .map(|k| format!("p.customer_key = {k} OR "))
                .unwrap_or_default();
            format!(
                "{by_key}p.crm_account_id = '{text}' OR p.erp_customer_id = '{text}' \
                 OR lower(c.email) = lower('{text}') OR lower(p.name) = lower('{text}')"
            )
        }
    };
    let rows = json(
        &warehouse
            .sql(&format!(
                "SELECT p.* FROM marts.customer_7p p JOIN core.customer c ON c.customer_key = p.customer_key \
                 WHERE {condition} ORDER BY p.customer_key LIMIT 20"
            ))
            .await?
            .batches,
    )?;
    let row = match rows.as_slice() {
        [] => return Err(ProfileError::NotFound(who.to_string())),
        [one] => one.clone(),
        many => {
            return Err(ProfileError::Ambiguous {
                query: who.to_string(),
                candidates: many
                    .iter()
                    .map(|r| {
                        format!(
                            "key:{} {} ({} / {})",
                            r.get("customer_key").unwrap_or(&Value::Null),
                            r.get("name").and_then(Value::as_str).unwrap_or(""),
                            r.get("crm_account_id").and_then(Value::as_str).unwrap_or("-"),
                            r.get("erp_customer_id").and_then(Value::as_str).unwrap_or("-"),
                        )
                    })
                    .collect(),
            });
        }
    };
    let key = row
        .get("customer_key")
        .and_then(Value::as_i64)
        .expect("customer_key is a non-null integer");
    let mut profile = Map::new();
    for (section, columns) in SECTIONS {
        let fields: Map<String, Value> = columns
            .iter()
            .map(|c| (c.to_string(), row.get(*c).cloned().unwrap_or(Value::Null)))
            .collect();
        profile.insert(section.to_string(), Value::Object(fields));
    }
    // The models' views of the customer, once their jobs have written them: churn score and
    // P(alive) are Persistency, lifetime value Profitability, expected purchases Prospecting.
    let from_models: [ModelView; 2] = [
        (
            "churn_score",
            "churn_score, risk_band, reason_1, reason_2, reason_3",
            &[
                ("churn_score", "persistency"),
                ("risk_band", "persistency"),
                ("reason_1", "persistency"),
                ("reason_2", "persistency"),
                ("reason_3", "persistency"),
            ],
        ),
        (
            "customer_lifetime",
            "p_alive, clv, expected_order_value, expected_purchases_90d",
            &[
                ("p_alive", "persistency"),
                ("clv", "profitability"),
                ("expected_order_value", "profitability"),
                ("expected_purchases_90d", "prospecting"),
            ],
        ),
    ];
    for (table, columns, placed) in from_models {
        if !warehouse.store().exists(crate::layout::Layer::Ml, table) {
            continue;
        }
        let found = json(
            &warehouse
                .sql(&format!("SELECT {columns} FROM ml.{table} WHERE customer_key = {key}"))
                .await?
                .batches,
        )?;
        let values = found.into_iter().next().unwrap_or_default();
        for (column, section) in placed {
            let name = match *column {
                "risk_band" => "churn_risk_band".to_string(),
                c if c.starts_with("reason_") => format!("churn_{c}"),
                c => c.to_string(),
            };
            if let Some(Value::Object(fields)) = profile.get_mut(*section) {
                fields.insert(name, values.get(*column).cloned().unwrap_or(Value::Null));
            }
        }
    }
    let mix = json(
        &warehouse
            .sql(&format!(
                "SELECT category, orders, net_sales, share FROM marts.customer_category_mix \
                 WHERE customer_key = {key} ORDER BY rank"
            ))
            .await?
            .batches,
    )?;
    profile.insert(
        "category_mix".into(),
        Value::Array(mix.into_iter().map(Value::Object).collect()),
    );
    // The history behind the measures: what the customer bought, month by month.
    let history = json(
        &warehouse
            .sql(&format!(
                "SELECT CAST(date_trunc('month', order_date) AS DATE) AS month, \
                 SUM(net_amount) AS net_sales, COUNT(DISTINCT order_id) AS orders \
                 FROM core.order_line WHERE customer_key = {key} AND status <> 'cancelled' \
                 GROUP BY 1 ORDER BY 1"
            ))
            .await?
            .batches,
    )?;
    profile.insert(
        "history".into(),
        Value::Array(history.into_iter().map(Value::Object).collect()),
    );
    Ok(profile)
}

/// Customers whose name or CRM or ERP id contains `text` (ignoring case), best customers first:
/// the search box of the dashboards. Reads only `marts.customer_7p`, as `caller`.
pub async fn search(
    warehouse: &Warehouse,
    caller: &crate::access::Caller,
    text: &str,
    limit: u32,
) -> Result<Vec<Map<String, Value>>, QueryError> {
    let pattern = text
        .trim()
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
        .replace('\'', "''");
    let result = warehouse
        .sql_as(
            &format!(
                "SELECT customer_key, name, crm_account_id, erp_customer_id, segment, region, rfm_segment, net_sales \
                 FROM marts.customer_7p \
                 WHERE lower(name) LIKE '%{pattern}%' ESCAPE '\\' OR lower(crm_account_id) LIKE '%{pattern}%' ESCAPE '\\' \
                 OR lower(erp_customer_id) LIKE '%{pattern}%' ESCAPE '\\' OR CAST(customer_key AS VARCHAR) = '{pattern}' \
                 ORDER BY net_sales DESC NULLS LAST, customer_key LIMIT {limit}"
            ),
            caller,
            "http",
        )
        .await?;
    json(&result.batches)
}
