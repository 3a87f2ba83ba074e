//! The canonical entities of the conformed layer (`staging`), as `../shared/docs/domain.md` names them.
//!
//! Column names here are the contract that the warehouse, notebooks and dashboards rely on. Staging
//! rows are still keyed by source ids (`customer_id` is the CRM account id or the ERP customer number,
//! told apart by `source_system`); the warehouse resolves them into one `customer_key`.

use std::fmt;
use std::str::FromStr;

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// The type of a mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    Text,
    /// 64-bit integer.
    Integer,
    /// Exact decimal (money, quantities): Decimal128 in storage.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// 64-bit float (scores, probabilities).
    Float,
    /// true / false.
    Boolean,
    /// Calendar date.
    Date,
    /// Instant in UTC, microseconds.
    Timestamp,
}

/// Money: two decimals.
pub const MONEY: ColumnType = ColumnType::Decimal {
    precision: 18,
    scale: 2,
};
/// Quantities: three decimals (weights and lengths, not only pieces).
pub const QUANTITY: ColumnType = ColumnType::Decimal {
    precision: 18,
    scale: 3,
};
/// Rates and fractions (discount 0.15).
pub const RATE: ColumnType = ColumnType::Decimal { precision: 9, scale: 4 };

impl ColumnType {
    /// The Arrow type it is stored as.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnType::Float => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Text => f.write_str("text"),
            ColumnType::Integer => f.write_str("int"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Boolean => f.write_str("bool"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "text" | "string" | "varchar" => ColumnType::Text,
            "int" | "integer" | "bigint" => ColumnType::Integer,
            "float" | "double" => ColumnType::Float,
            "bool" | "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "money" => MONEY,
            "quantity" => QUANTITY,
            "rate" => RATE,
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| format!("unknown type `{s}` (text, int, float, bool, date, timestamp, decimal(p,s), money, quantity, rate)"))?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| format!("`{s}`: write decimal(precision,scale)"))?;
                let precision: u8 = p.trim().parse().map_err(|_| format!("`{s}`: bad precision"))?;
                let scale: i8 = sc.trim().parse().map_err(|_| format!("`{s}`: bad scale"))?;
                if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
                    return Err(format!("`{s}`: precision must be 1..=38 and scale 0..=precision"));
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

/// One column of a canonical entity.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Name, as in domain.md.
    pub name: &'static str,
    /// Stored type.
    pub kind: ColumnType,
    /// Whether a row without it is rejected.
    pub required: bool,
}

/// A canonical entity: its staging table, columns, key and partitioning.
#[derive(Debug, Clone, Copy)]
pub struct Entity {
    /// Entity and staging table name.
    pub name: &'static str,
    /// Columns in canonical order.
    pub columns: &'static [Column],
    /// Columns that identify a row (de-duplication and updates).
    pub key: &'static [&'static str],
    /// Date or timestamp column whose month partitions the table (facts only).
    pub month_of: Option<&'static str>,
}

impl Entity {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn c(name: &'static str, kind: ColumnType) -> Column {
    Column {
        name,
        kind,
        required: false,
    }
}

const fn req(name: &'static str, kind: ColumnType) -> Column {
    Column {
        name,
        kind,
        required: true,
    }
}

use ColumnType::{Boolean, Date, Float, Integer, Text, Timestamp};

/// Every canonical entity.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "customer",
        columns: &[
            req("source_system", Text),
            req("customer_id", Text),
            req("name", Text),
            c("email", Text),
            c("phone", Text),
            c("tax_id", Text),
            c("segment", Text),
            c("industry", Text),
            c("country", Text),
            c("region", Text),
            c("city", Text),
            c("created_at", Timestamp),
            c("is_active", Boolean),
        ],
        key: &["source_system", "customer_id"],
        month_of: None,
    },
    Entity {
        name: "product",
        columns: &[
            req("sku", Text),
            req("name", Text),
            c("category", Text),
            c("subcategory", Text),
            c("brand", Text),
            c("list_price", MONEY),
            c("standard_cost", MONEY),
            c("currency", Text),
            c("launched_at", Date),
        ],
        key: &["sku"],
        month_of: None,
    },
    Entity {
        name: "sales_order",
        columns: &[
            req("order_id", Text),
            req("customer_id", Text),
            req("order_date", Date),
            c("channel", Text),
            c("sales_rep", Text),
            c("status", Text),
            c("currency", Text),
            c("net_total", MONEY),
        ],
        key: &["order_id"],
        month_of: Some("order_date"),
    },
    Entity {
        name: "order_line",
        columns: &[
            req("order_id", Text),
            req("line_number", Integer),
            req("sku", Text),
            req("quantity", QUANTITY),
            c("unit_price", MONEY),
            c("discount", RATE),
            c("net_amount", MONEY),
            c("unit_cost", MONEY),
        ],
        key: &["order_id", "line_number"],
        month_of: None,
    },
    Entity {
        name: "invoice",
        columns: &[
            req("invoice_id", Text),
            c("order_id", Text),
            c("customer_id", Text),
            req("invoiced_at", Date),
            c("due_at", Date),
            c("amount", MONEY),
            c("currency", Text),
            c("status", Text),
        ],
        key: &["invoice_id"],
        month_of: Some("invoiced_at"),
    },
    Entity {
        name: "payment",
        columns: &[
            req("payment_id", Text),
            req("invoice_id", Text),
            req("amount", MONEY),
            req("paid_at", Date),
            c("method", Text),
            c("days_late", Integer),
        ],
        key: &["payment_id"],
        month_of: Some("paid_at"),
    },
    Entity {
        name: "sales_return",
        columns: &[
            req("return_id", Text),
            req("order_id", Text),
            c("line_number", Integer),
            c("sku", Text),
            req("quantity", QUANTITY),
            req("returned_at", Date),
            c("reason", Text),
            c("amount", MONEY),
        ],
        key: &["return_id"],
        month_of: Some("returned_at"),
    },
    Entity {
        name: "inventory_snapshot",
        columns: &[
            req("snapshot_date", Date),
            req("sku", Text),
            req("location", Text),
            req("on_hand", QUANTITY),
            c("on_order", QUANTITY),
        ],
        key: &["snapshot_date", "sku", "location"],
        month_of: Some("snapshot_date"),
    },
    Entity {
        name: "interaction",
        columns: &[
            req("interaction_id", Text),
            c("customer_id", Text),
            c("contact_id", Text),
            req("occurred_at", Timestamp),
            req("channel", Text),
            c("direction", Text),
            c("type", Text),
            c("duration_s", Integer),
            c("outcome", Text),
            c("campaign_id", Text),
            c("agent", Text),
            c("sentiment", Float),
        ],
        key: &["interaction_id"],
        month_of: Some("occurred_at"),
    },
    Entity {
        name: "support_ticket",
        columns: &[
            req("ticket_id", Text),
            c("customer_id", Text),
            c("contact_id", Text),
            req("opened_at", Timestamp),
            c("closed_at", Timestamp),
            c("channel", Text),
            c("priority", Text),
            c("category", Text),
            c("status", Text),
            c("satisfaction", Integer),
            c("first_response_s", Integer),
        ],
        key: &["ticket_id"],
        month_of: Some("opened_at"),
    },
    Entity {
        name: "lead",
        columns: &[
            req("lead_id", Text),
            c("company", Text),
            c("email", Text),
            c("phone", Text),
            c("country", Text),
            c("source", Text),
            c("status", Text),
            req("created_at", Timestamp),
            c("is_converted", Boolean),
            c("converted_at", Timestamp),
            c("converted_customer_id", Text),
        ],
        key: &["lead_id"],
        month_of: None,
    },
    Entity {
        name: "opportunity",
        columns: &[
            req("opportunity_id", Text),
            c("customer_id", Text),
            c("name", Text),
            c("stage", Text),
            c("amount", MONEY),
            c("probability", Float),
            c("expected_close", Date),
            c("created_at", Timestamp),
            c("is_closed", Boolean),
            c("is_won", Boolean),
            c("type", Text),
            c("owner", Text),
        ],
        key: &["opportunity_id"],
        month_of: None,
    },
    Entity {
        name: "campaign",
        columns: &[
            req("campaign_id", Text),
            req("name", Text),
            c("channel", Text),
            c("status", Text),
            c("started_at", Date),
            c("ended_at", Date),
            c("budget", MONEY),
            c("actual_cost", MONEY),
            c("offer", Text),
            c("target_category", Text),
        ],
        key: &["campaign_id"],
        month_of: None,
    },
    Entity {
        name: "campaign_touch",
        columns: &[
            req("campaign_id", Text),
            c("customer_id", Text),
            req("contact_id", Text),
            c("sent_at", Timestamp),
            c("status", Text),
            c("is_control", Boolean),
            c("opened", Boolean),
            c("clicked", Boolean),
            c("responded", Boolean),
            c("converted_order_id", Text),
        ],
        key: &["campaign_id", "contact_id"],
        month_of: None,
    },
];

/// The entity called `name`.
pub fn entity(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_month_column_exists() {
        for e in ENTITIES {
            for k in e.key {
                assert!(e.column(k).is_some_and(|c| c.required), "{}.{k}", e.name);
            }
            if let Some(m) = e.month_of {
                assert!(
                    matches!(e.column(m).map(|c| c.kind), Some(Date | Timestamp)),
                    "{}.{m}",
                    e.name
                );
            }
        }
    }

    #[test]
    fn types_parse_and_print_back() {
        for t in [
            "text",
            "int",
            "float",
            "bool",
            "date",
            "timestamp",
            "decimal(18,2)",
            "decimal(9,4)",
        ] {
            assert_eq!(t.parse::<ColumnType>().unwrap().to_string(), t);
        }
        assert_eq!("money".parse::<ColumnType>().unwrap(), MONEY);
        assert!("decimal(40,2)".parse::<ColumnType>().is_err());
        assert!("blob".parse::<ColumnType>().unwrap_err().contains("unknown type"));
    }
}
