//! Bringing `core` and `marts` up to date with `staging`: what `tributary refresh` does, and what
//! every ingest ends with.
//!
//! Each derived table is one SQL statement (in `warehouse/sql/<layer>/<table>.sql`, readable by
//! analysts) over tables built before it. A table is rebuilt only when something it reads changed:
//! its commit records the versions of its inputs and a fingerprint of its SQL and parameters, and a
//! refresh that finds the same inputs leaves it alone. Rebuilds stream the query's result into a
//! new Delta version in one commit, so readers see the old or the new table, never half of one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Date32Array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::catalog::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::engine::{QueryError, Warehouse};
use crate::entity::ENTITIES;
use crate::identity::{CustomerRefresh, refresh_customers, stable_key};
use crate::layout::Layer;
use crate::store::StoreError;

/// A table derived by one SQL statement.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    /// `core` or `marts`.
    pub layer: Layer,
    /// Table name.
    pub name: &'static str,
    /// The statement, with `{parameter}` placeholders.
    pub sql: &'static str,
}

macro_rules! derived {
    ($layer:ident, $dir:literal, $($name:literal),+ $(,)?) => {
        &[$(Derived {
            layer: Layer::$layer,
            name: $name,
            sql: include_str!(concat!("../sql/", $dir, "/", $name, ".sql")),
        }),+]
    };
}

/// The conformed facts and dimensions, in build order (each reads only staging and earlier ones).
/// `core.customer`, `core.customer_source` and `core.customer_match` come first, from the identity
/// resolution; `core.calendar` is generated.
pub const CORE: &[Derived] = derived!(
    Core,
    "core",
    "product",
    "sales_order",
    "sales_return",
    "order_line",
    "invoice",
    "payment",
    "inventory_snapshot",
    "interaction",
    "support_ticket",
    "lead",
    "opportunity",
    "campaign",
    "campaign_touch",
    "channel",
);

/// The 7P marts, in build order; `customer_7p` reads the per-P marts.
pub const MARTS: &[Derived] = derived!(
    Marts,
    "marts",
    // Profiling
    "customer_rfm",
    // Persistency
    "customer_persistency",
    "cohort_retention",
    // Profitability
    "customer_profitability",
    // Performance
    "sales_performance",
    "customer_performance",
    // Prospecting
    "customer_prospecting",
    "pipeline",
    "lead_funnel",
    // Product
    "customer_category_mix",
    "product_association",
    // Promotion
    "campaign_response",
    "customer_promotion",
    // All seven
    "customer_7p",
    // Rollups the semantic layer answers from
    "sales_daily",
    "orders_daily",
    "active_customers",
    "churn_monthly",
    "campaign_daily",
    "product_sales_monthly",
    "product_sales_weekly",
);

/// The choices the marts depend on (`[marts]` in the configuration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MartParams {
    /// End of observation; by default the last order date in staging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    /// Cost to serve of one support ticket.
    pub ticket_cost: f64,
    /// Cost to serve of one interaction (call, email, meeting).
    pub interaction_cost: f64,
    /// Orders a product pair needs together to be kept as an association rule.
    pub min_pair_orders: u64,
    /// Days without a purchase after which a customer counts as churned (`churn_rate`).
    pub churn_days: u32,
}

impl Default for MartParams {
    fn default() -> Self {
        Self {
            as_of: None,
            ticket_cost: 25.0,
            interaction_cost: 5.0,
            min_pair_orders: 20,
            churn_days: 90,
        }
    }
}

/// Why a refresh stopped. Tables rebuilt before the failure, or beside the failed one, keep their
/// new version; the failed one and those not started keep their old one.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Reading or writing a table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Setting up the session failed.
    #[error(transparent)]
    Session(#[from] QueryError),
    /// A derived table's statement failed.
    #[error("building {table}: {source}")]
    Build {
        /// `layer.name`.
        table: String,
        /// What DataFusion reported.
        #[source]
        source: DataFusionError,
    },
}

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableRefresh {
    /// `layer.name`.
    pub table: String,
    /// Rebuilt (new version) or left as it was because nothing it reads changed.
    pub rebuilt: bool,
    /// Rows after the refresh.
    pub rows: u64,
    /// Wall time spent on it.
    pub seconds: f64,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefreshReport {
    /// End of observation the marts used.
    pub as_of: NaiveDate,
    /// Customer identity, when it was re-resolved.
    pub customers: Option<CustomerRefresh>,
    /// Every derived table, in build order.
    pub tables: Vec<TableRefresh>,
}

/// The metadata key under which a derived table's commit records what it was built from.
pub(crate) const INPUTS_KEY: &str = "tributary.refresh.inputs";

/// Which tables a refresh rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Those whose inputs changed (what ingest and `tributary refresh` do).
    Changed,
    /// Every mart, changed or not (benchmarks, or after editing the marts' SQL by hand).
    AllMarts,
}

/// Bring `core` and `marts` up to date with `staging`.
pub async fn refresh(warehouse: &Warehouse, params: &MartParams) -> Result<RefreshReport, RefreshError> {
    refresh_with(warehouse, params, Rebuild::Changed).await
}

/// [`refresh`], choosing what to rebuild.
pub async fn refresh_with(
    warehouse: &Warehouse,
    params: &MartParams,
    rebuild: Rebuild,
) -> Result<RefreshReport, RefreshError> {
    let store = warehouse.store();
    let mut tables = Vec::new();

    // Customer identity, when the customer records changed.
    let started = Instant::now();
    let inputs = fingerprint(
        &[(
            "staging.customer".to_string(),
            store.latest_version(Layer::Staging, "customer"),
        )],
        "identity",
    );
    let customers = if recorded_inputs(warehouse, Layer::Core, "customer").await?.as_deref() == Some(inputs.as_str()) {
        None
    } else {
        Some(refresh_customers(store, metadata(&inputs)).await?)
    };
    tables.push(TableRefresh {
        table: "core.customer".into(),
        rebuilt: customers.is_some(),
        rows: count(warehouse, Layer::Core, "customer").await?,
        seconds: started.elapsed().as_secs_f64(),
    });

    let ctx = session(warehouse).await?;
    let (first_order, last_order) = order_dates(&ctx).await?;
    let as_of = end_of_observation(params, last_order);

    let started = Instant::now();
    let calendar = crate::calendar::refresh_calendar(warehouse, &ctx, first_order, as_of).await?;
    tables.push(TableRefresh {
        table: "core.calendar".into(),
        rebuilt: calendar.0,
        rows: calendar.1,
        seconds: started.elapsed().as_secs_f64(),
    });

    // Each table's statement, and the derived tables it reads: it is built once they are.
    let order: Vec<&'static Derived> = CORE.iter().chain(MARTS).collect();
    let mut planned = Vec::with_capacity(order.len());
    let mut waits_for: Vec<Vec<usize>> = Vec::with_capacity(order.len());
    for derived in &order {
        let label = format!("{}.{}", derived.layer, derived.name);
        let build = |source| RefreshError::Build {
            table: label.clone(),
            source,
        };
        let sql = render(derived.sql, as_of, params);
        let statement = parse(&ctx, &sql).map_err(build)?;
        let mut inputs = Vec::new();
        for reference in ctx.state().resolve_table_references(&statement).map_err(build)? {
            let (Some(schema), table) = (reference.schema(), reference.table()) else {
                continue;
            };
            if let Some(layer) = Layer::ALL.into_iter().find(|l| l.name() == schema) {
                inputs.push((layer, table.to_string()));
            }
        }
        // Only those before it: the build order already puts every table after what it reads.
        let after: Vec<usize> = order
            .iter()
            .take(planned.len())
            .enumerate()
            .filter(|(_, earlier)| inputs.iter().any(|(l, t)| *l == earlier.layer && t == earlier.name))
            .map(|(i, _)| i)
            .collect();
        planned.push(Some(PlannedBuild {
            derived,
            label,
            sql,
            statement,
            inputs,
            rebuild_anyway: rebuild == Rebuild::AllMarts && derived.layer == Layer::Marts,
        }));
        waits_for.push(after);
    }

    // A table whose inputs are built starts while others run, at most BUILDS_AT_ONCE at a time.
    // After a failure none starts, those running finish, and the first failure is returned.
    let mut built: Vec<Option<TableRefresh>> = vec![None; planned.len()];
    let mut building = tokio::task::JoinSet::new();
    let mut failure = None;
    loop {
        for (i, slot) in planned.iter_mut().enumerate() {
            if failure.is_some() || building.len() >= BUILDS_AT_ONCE {
                break;
            }
            if slot.is_none() || waits_for[i].iter().any(|&j| built[j].is_none()) {
                continue;
            }
            let job = slot.take().expect("checked above");
            let warehouse = warehouse.clone();
            building.spawn(async move { (i, job.run(&warehouse).await) });
        }
        let Some(joined) = building.join_next().await else {
            break;
        };
        match joined {
            Ok((i, Ok(table))) => built[i] = Some(table),
            Ok((_, Err(e))) => {
                failure.get_or_insert(e);
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    tables.extend(built.into_iter().flatten());
    Ok(RefreshReport {
        as_of,
        customers,
        tables,
    })
}

/// How many derived tables are built at once. A mart's query leaves a core idle in its serial
/// parts (the last merge of a grouping or a sort, a window over one partition, writing the files),
/// which a second build fills; more would divide the memory pool further for little more.
const BUILDS_AT_ONCE: usize = 2;

/// The end of observation: `[marts] as_of`, else the last order date in staging, else today.
fn end_of_observation(params: &MartParams, last_order: Option<NaiveDate>) -> NaiveDate {
    params
        .as_of
        .or(last_order)
        .unwrap_or_else(|| chrono::Utc::now().date_naive())
}

/// A derived table's statement, parsed in PostgreSQL's dialect: the generic one does not read
/// `AS MATERIALIZED`.
fn parse(ctx: &SessionContext, sql: &str) -> Result<datafusion::sql::parser::Statement, DataFusionError> {
    ctx.state()
        .sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)
}

/// One derived table's statement, to be built once the tables it reads are.
struct PlannedBuild {
    derived: &'static Derived,
    label: String,
    sql: String,
    statement: datafusion::sql::parser::Statement,
    inputs: Vec<(Layer, String)>,
    rebuild_anyway: bool,
}

impl PlannedBuild {
    /// Rebuilds the table if what it reads changed since its last build (or always, when asked).
    /// In a session of its own: the tables its materialized CTEs become are named in it, and
    /// another build running beside it may use the same names.
    async fn run(self, warehouse: &Warehouse) -> Result<TableRefresh, RefreshError> {
        let started = Instant::now();
        let Self {
            derived,
            label,
            sql,
            statement,
            inputs,
            rebuild_anyway,
        } = self;
        let store = warehouse.store();
        // The commit files' names tell the version; opening the table would replay its log.
        let versions: Vec<(String, Option<u64>)> = inputs
            .iter()
            .map(|(layer, table)| (format!("{layer}.{table}"), store.latest_version(*layer, table)))
            .collect();
        let inputs = fingerprint(&versions, &sql);
        let rebuilt = rebuild_anyway
            || recorded_inputs(warehouse, derived.layer, derived.name)
                .await?
                .as_deref()
                != Some(inputs.as_str());
        if rebuilt {
            let ctx = session(warehouse).await?;
            let build = |source| RefreshError::Build {
                table: label.clone(),
                source,
            };
            let (query, materialized) = plan_materializing(&ctx, statement, None).await.map_err(build)?;
            store
                .replace_query(derived.layer, derived.name, query, metadata(&inputs))
                .await?;
            // The materialized parts were this statement's alone.
            drop(materialized);
        }
        tracing::debug!(table = %derived.name, rebuilt, "refreshed");
        Ok(TableRefresh {
            rows: count(warehouse, derived.layer, derived.name).await?,
            table: label,
            rebuilt,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Plan a derived table's statement, first computing each of its common table expressions marked
/// `AS MATERIALIZED` once, in order, into memory, where the rest of the statement reads it under
/// its name. DataFusion otherwise inlines a CTE wherever it is named, so a basket of ten million
/// order lines that a mart joins with itself and counts would be computed three times; DuckDB and
/// PostgreSQL honour the same hint, so the marts' SQL stays portable. Returns the plan of what is
/// left and the tables it reads the materialized CTEs from, which leave the session when that is
/// dropped (once the plan has run). CTEs with a column list stay inline (the hint is a hint).
/// With `explained`, each materialized CTE's plan is added to it with what each step took.
async fn plan_materializing<'a>(
    ctx: &'a SessionContext,
    statement: datafusion::sql::parser::Statement,
    mut explained: Option<&mut Vec<String>>,
) -> Result<(datafusion::dataframe::DataFrame, MaterializedCtes<'a>), DataFusionError> {
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::sqlparser::ast::{CteAsMaterialized, Statement, With};

    let mut statement = statement;
    // Dropped on every early return too, so a failed statement leaves nothing registered.
    let mut registered = MaterializedCtes { ctx, names: Vec::new() };
    if let DfStatement::Statement(inner) = &mut statement
        && let Statement::Query(query) = inner.as_mut()
        && let Some(with) = query.with.as_mut()
        && !with.recursive
    {
        let mut inline: Vec<datafusion::sql::sqlparser::ast::Cte> = Vec::new();
        for cte in std::mem::take(&mut with.cte_tables) {
            if cte.materialized != Some(CteAsMaterialized::Materialized) || !cte.alias.columns.is_empty() {
                inline.push(cte);
                continue;
            }
            // The CTE's body sees the inline CTEs declared before it, as it would in place.
            let mut body = *cte.query;
            if !inline.is_empty() {
                let (recursive, own) = body
                    .with
                    .take()
                    .map_or((false, Vec::new()), |w| (w.recursive, w.cte_tables));
                body.with = Some(With {
                    with_token: with.with_token.clone(),
                    recursive,
                    cte_tables: inline.iter().cloned().chain(own).collect(),
                });
            }
            let name = cte.alias.name.value.clone();
            let plan = ctx
                .state()
                .statement_to_plan(DfStatement::Statement(Box::new(Statement::Query(Box::new(body)))))
                .await?;
            let frame = ctx.execute_logical_plan(plan).await?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let plan = frame.create_physical_plan().await?;
            let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await?;
            if let Some(explained) = explained.as_deref_mut() {
                explained.push(explain_analyzed(&format!("{name} AS MATERIALIZED"), &plan, &batches));
            }
            // Spread over the partitions so that what reads it runs on every core.
            let lanes = ctx.state().config().target_partitions().max(1);
            let mut partitions = vec![Vec::new(); lanes];
            for (i, batch) in batches.into_iter().enumerate() {
                partitions[i % lanes].push(batch);
            }
            let table = MemTable::try_new(schema, partitions)?;
            ctx.register_table(name.as_str(), Arc::new(table))?;
            registered.names.push(name);
        }
        if inline.is_empty() {
            query.with = None;
        } else {
            with.cte_tables = inline;
        }
    }
    let plan = ctx.state().statement_to_plan(statement).await?;
    Ok((ctx.execute_logical_plan(plan).await?, registered))
}

/// A plan that ran, with what each step took, as `EXPLAIN ANALYZE` shows it, under a heading.
fn explain_analyzed(
    heading: &str,
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    batches: &[datafusion::arrow::array::RecordBatch],
) -> String {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let steps = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true);
    format!("{heading} ({rows} rows):\n{steps}")
}

/// Run one mart's statement as the refresh would, without writing it: returns each materialized
/// CTE's plan and the statement's, with what each step took, and the seconds the whole took. For
/// profiling a mart (`cargo bench --bench analyst_queries -- explain mart NAME`).
pub async fn explain_mart(
    warehouse: &Warehouse,
    params: &MartParams,
    name: &str,
) -> Result<(String, f64), RefreshError> {
    let build = |source| RefreshError::Build {
        table: format!("marts.{name}"),
        source,
    };
    let Some(mart) = MARTS.iter().find(|m| m.name == name) else {
        return Err(build(DataFusionError::Plan(format!("no mart named {name}"))));
    };
    let ctx = session(warehouse).await?;
    let (_, last_order) = order_dates(&ctx).await?;
    let as_of = end_of_observation(params, last_order);
    let sql = render(mart.sql, as_of, params);
    let statement = parse(&ctx, &sql).map_err(build)?;
    let started = Instant::now();
    let mut explained = Vec::new();
    let (query, materialized) = plan_materializing(&ctx, statement, Some(&mut explained))
        .await
        .map_err(build)?;
    let plan = query.create_physical_plan().await.map_err(build)?;
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
        .await
        .map_err(build)?;
    let seconds = started.elapsed().as_secs_f64();
    drop(materialized);
    explained.push(explain_analyzed(&format!("marts.{name}"), &plan, &batches));
    Ok((explained.join("\n"), seconds))
}

/// The tables a statement's materialized CTEs were computed into; they leave the session when this
/// is dropped.
struct MaterializedCtes<'a> {
    ctx: &'a SessionContext,
    names: Vec<String>,
}

impl Drop for MaterializedCtes<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            // Deregistering from the session's in-memory schema cannot fail.
            self.ctx.deregister_table(name.as_str()).ok();
        }
    }
}

/// The statement with its parameters filled in.
pub fn render(sql: &str, as_of: NaiveDate, params: &MartParams) -> String {
    sql.replace("{as_of}", &format!("DATE '{as_of}'"))
        .replace("{ticket_cost}", &format!("{:.2}", params.ticket_cost))
        .replace("{interaction_cost}", &format!("{:.2}", params.interaction_cost))
        .replace("{min_pair_orders}", &params.min_pair_orders.to_string())
        .replace("{churn_days}", &params.churn_days.to_string())
}

/// A session over every table, with the missing staging tables standing in as empty tables of the
/// canonical shape (a company without campaigns still gets every mart).
async fn session(warehouse: &Warehouse) -> Result<SessionContext, RefreshError> {
    let ctx = warehouse.context().await?;
    for entity in ENTITIES {
        if warehouse.store().exists(Layer::Staging, entity.name) {
            continue;
        }
        let schema = Arc::new(Schema::new(
            entity
                .columns
                .iter()
                .map(|c| Field::new(c.name, c.kind.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        let empty = MemTable::try_new(schema, vec![vec![]]).map_err(|source| RefreshError::Build {
            table: format!("staging.{}", entity.name),
            source,
        })?;
        ctx.register_table(format!("staging.{}", entity.name).as_str(), Arc::new(empty))
            .map_err(|source| RefreshError::Build {
                table: format!("staging.{}", entity.name),
                source,
            })?;
    }
    Ok(ctx)
}

/// The first and last order dates in staging: where the calendar starts, and the default end of
/// observation.
async fn order_dates(ctx: &SessionContext) -> Result<(Option<NaiveDate>, Option<NaiveDate>), RefreshError> {
    let build = |source| RefreshError::Build {
        table: "staging.sales_order".into(),
        source,
    };
    let batches = ctx
        .sql("SELECT MIN(order_date), MAX(order_date) FROM staging.sales_order")
        .await
        .map_err(build)?
        .collect()
        .await
        .map_err(build)?;
    let date = |column: usize| {
        let dates = batches.first()?.column(column).as_any().downcast_ref::<Date32Array>()?;
        if dates.is_null(0) { None } else { dates.value_as_date(0) }
    };
    Ok((date(0), date(1)))
}

/// Input versions plus a hash of the statement, in one comparable string.
fn fingerprint(versions: &[(String, Option<u64>)], sql: &str) -> String {
    let mut sorted: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for (table, version) in versions {
        sorted.insert(table, *version);
    }
    let mut out: Vec<String> = sorted
        .iter()
        .map(|(t, v)| match v {
            Some(v) => format!("{t}@{v}"),
            None => format!("{t}@none"),
        })
        .collect();
    out.push(format!("sql@{:016x}", stable_key(sql)));
    out.join(",")
}

pub(crate) fn metadata(inputs: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert(INPUTS_KEY.into(), inputs.into());
    map
}

/// What the table's latest commit says it was built from.
pub(crate) async fn recorded_inputs(
    warehouse: &Warehouse,
    layer: Layer,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let commit = warehouse.store().latest_commit(layer, name).await?;
    Ok(commit
        .as_ref()
        .and_then(|info| info.get(INPUTS_KEY))
        .and_then(|v| v.as_str())
        .map(str::to_string))
}

/// Rows in a table (from the Delta log's file statistics where they are kept).
async fn count(warehouse: &Warehouse, layer: Layer, name: &str) -> Result<u64, StoreError> {
    use datafusion::arrow::array::Int64Array;
    if !warehouse.store().exists(layer, name) {
        return Ok(0);
    }
    let batches = warehouse
        .store()
        .query(&[(layer, name)], &format!("SELECT COUNT(*) FROM {layer}.{name}"))
        .await?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::BooleanArray;

    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<datafusion::arrow::array::RecordBatch>, Vec<String>) {
        let statement = ctx
            .state()
            .sql_to_statement(sql, &datafusion::config::Dialect::PostgreSQL)
            .expect("parses");
        let (frame, materialized) = plan_materializing(ctx, statement, None).await.expect("plans");
        (frame.collect().await.expect("runs"), materialized.names.clone())
    }

    #[tokio::test]
    async fn a_materialized_cte_is_computed_once_and_sees_the_ctes_before_it() {
        let ctx = SessionContext::new();
        // `random()` differs on every evaluation: both sides agree only if the CTE ran once.
        let sql = "WITH base AS (SELECT 41 AS x), \
                   drawn AS MATERIALIZED (SELECT random() AS v, x + 1 AS y FROM base) \
                   SELECT a.v = b.v AS same, a.y FROM drawn a CROSS JOIN drawn b";
        let (batches, materialized) = run(&ctx, sql).await;
        assert_eq!(materialized, vec!["drawn".to_string()]);
        let same = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bool");
        assert!(same.value(0), "the two references read one computation");
        let y = datafusion::arrow::util::display::array_value_to_string(batches[0].column(1), 0).expect("text");
        assert_eq!(y, "42");
        assert!(
            !ctx.table_exist("drawn").expect("a bare name"),
            "gone from the session once the statement has run"
        );

        // Without the hint the CTE is inlined where it is named, and computed twice.
        let inline = sql.replace("AS MATERIALIZED", "AS");
        let (batches, materialized) = run(&ctx, &inline).await;
        assert!(materialized.is_empty());
        let same = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bool");
        assert!(!same.value(0), "inlined, each reference draws its own number");
    }
}
