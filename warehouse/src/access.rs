//! Who may read what: roles, the read-only rule and masking of personal data.
//!
//! Every front end (HTTP, PostgreSQL wire, dashboards) names a [`Caller`] when it runs a query,
//! and the engine applies the same rules to all of them, so the two protocols cannot disagree:
//!
//! - a role sees only its layers ([`Role::layers`]): `viewer` the marts and ml scores, `analyst`
//!   also the resolved `core` tables, `admin` everything;
//! - the endpoint is read-only: one statement, and only a query (`SELECT`, `WITH`, `VALUES`),
//!   `EXPLAIN` of one, `SHOW` or `DESCRIBE` ([`check_read_only`]); DDL, DML, `COPY`, `SET` and
//!   `CREATE EXTERNAL TABLE` (which would read any file the server can) are refused;
//! - for every role but `admin`, personal data (email, phone, tax id) is replaced by a mask that
//!   keeps what analysis needs (an email's domain, a number's last two digits) ([`masked`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::layout::Layer;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Dashboards and reports: the marts and the ml scores and forecasts.
    Viewer,
    /// Also the resolved `core` tables, with personal data masked.
    Analyst,
    /// Everything, unmasked, including ingest and jobs.
    Admin,
}

impl Role {
    /// The layers this role may read.
    pub fn layers(self) -> &'static [Layer] {
        match self {
            Role::Viewer => &[Layer::Marts, Layer::Ml],
            Role::Analyst => &[Layer::Core, Layer::Marts, Layer::Ml],
            Role::Admin => &Layer::ALL,
        }
    }

    /// Whether this role may read `layer`.
    pub fn reads(self, layer: Layer) -> bool {
        self.layers().contains(&layer)
    }

    /// Whether personal data is masked for this role.
    pub fn masks_personal_data(self) -> bool {
        self != Role::Admin
    }

    /// The name used in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(format!("no role {other:?} (viewer, analyst, admin)")),
        }
    }
}

/// Who runs a query: a signed-in user, or the local operator of the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// User name, as recorded in `system.query_log`.
    pub user: String,
    /// What the user may read.
    pub role: Role,
}

impl Caller {
    /// The person at the command line, who owns the data directory anyway.
    pub fn local() -> Self {
        Self {
            user: "local".into(),
            role: Role::Admin,
        }
    }
}

/// Why a statement may not run on the read-only endpoint.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "only queries run here (SELECT, WITH, VALUES, EXPLAIN, SHOW, DESCRIBE); {kind} statements are refused: the endpoint is read-only"
)]
pub struct NotReadOnly {
    /// What the statement was, in the user's words (`CREATE TABLE`, `COPY`, ...).
    pub kind: String,
}

/// Accept a parsed statement only if it reads and nothing else.
pub fn check_read_only(statement: &DfStatement) -> Result<(), NotReadOnly> {
    let refuse = |kind: &str| Err(NotReadOnly { kind: kind.to_string() });
    match statement {
        DfStatement::Statement(inner) => check_sql_statement(inner),
        DfStatement::Explain(explain) => check_read_only(&explain.statement),
        DfStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DfStatement::CopyTo(_) => refuse("COPY"),
        DfStatement::Reset(_) => refuse("RESET"),
    }
}

fn check_sql_statement(statement: &Statement) -> Result<(), NotReadOnly> {
    match statement {
        Statement::Query(_)
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ExplainTable { .. } => Ok(()),
        // EXPLAIN ANALYZE runs what it explains; plain EXPLAIN of anything but a query has no use.
        Statement::Explain { statement, .. } => check_sql_statement(statement),
        other => {
            // The statement's first words name it well enough (`CREATE TABLE`, `INSERT`, `COPY`).
            let text = other.to_string();
            let kind: Vec<&str> = text
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
                .take(2)
                .collect();
            Err(NotReadOnly {
                kind: if kind.is_empty() {
                    "these".into()
                } else {
                    kind.join(" ").to_uppercase()
                },
            })
        }
    }
}

/// Whether a column holds personal data that non-admin roles see masked.
pub fn is_personal(column: &str) -> bool {
    let column = column.to_ascii_lowercase();
    let named = |what: &str| column == what || column.ends_with(&format!("_{what}"));
    named("email") || named("phone") || named("tax_id") || named("vat_id")
}

/// The mask of one personal column: an email keeps its domain (`***@example.com`), anything else
/// its last two characters (`***67`), so segments by company domain and de-duplication checks
/// still work while the person cannot be contacted or identified.
fn mask(column: &str) -> Expr {
    use datafusion::functions::expr_fn::{concat, regexp_replace, right};
    let text = cast(col(column), datafusion::arrow::datatypes::DataType::Utf8);
    let masked = if column.to_ascii_lowercase().ends_with("email") {
        regexp_replace(text, lit("^[^@]*"), lit("***"), None)
    } else {
        concat(vec![lit("***"), right(text, lit(2i64))])
    };
    masked.alias(column)
}

/// `provider` as seen by `role`: unchanged for admins and for tables without personal data,
/// otherwise a view that masks every personal column.
pub fn masked(
    provider: Arc<dyn TableProvider>,
    label: &str,
    role: Role,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let schema = provider.schema();
    if !role.masks_personal_data() || !schema.fields().iter().any(|f| is_personal(f.name())) {
        return Ok(provider);
    }
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_personal(f.name()) {
                mask(f.name())
            } else {
                col(datafusion::common::Column::from_name(f.name()))
            }
        })
        .collect();
    let plan = LogicalPlanBuilder::scan(label, provider_as_source(provider), None)?
        .project(columns)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> DfStatement {
        datafusion::sql::parser::DFParser::parse_sql(sql)
            .unwrap()
            .pop_front()
            .unwrap()
    }

    #[test]
    fn only_queries_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE marts.customer_7p",
            "VALUES (1)",
        ] {
            assert_eq!(check_read_only(&parse(ok)), Ok(()), "{ok}");
        }
        for (bad, kind) in [
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("DROP TABLE core.customer", "DROP TABLE"),
            ("INSERT INTO t VALUES (1)", "INSERT INTO"),
            ("DELETE FROM t", "DELETE FROM"),
            (
                "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "INSERT INTO"),
        ] {
            let err = check_read_only(&parse(bad)).unwrap_err();
            assert!(err.kind.starts_with(kind), "{bad}: {}", err.kind);
        }
    }

    #[test]
    fn roles_see_their_layers() {
        assert!(Role::Viewer.reads(Layer::Marts) && !Role::Viewer.reads(Layer::Core));
        assert!(Role::Analyst.reads(Layer::Core) && !Role::Analyst.reads(Layer::Raw));
        assert!(Role::Admin.reads(Layer::System));
        assert!(is_personal("email") && is_personal("contact_phone") && is_personal("TAX_ID"));
        assert!(!is_personal("emails_sent") && !is_personal("phone_calls"));
    }
}
