//! The one way queries run: every front end (CLI `sql`, HTTP, PostgreSQL wire, dashboards, jobs)
//! calls [`Warehouse::sql`], so all of them see the same tables and the same limits.
//!
//! Limits from `[limits]`: one memory pool shared by all running queries (operators that can spill
//! do so to `<data-dir>/spill` when it is full), a wall-clock timeout over the whole query (waiting
//! for a turn, planning and execution), a cap on result rows, and a cap on queries running at once
//! (later ones wait their turn). Each breach is its own [`QueryError`] variant.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::{Caller, NotReadOnly, Role};
use crate::layout::{DataDir, Layer};
use crate::limits::QueryLimits;
use crate::planner_options::PlannerOptions;
use crate::query_log::{QueryLog, QueryLogEntry};
use crate::store::{AsOf, Store, StoreError};

/// Why a query gave no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is wrong (syntax, unknown table or column, types).
    #[error("{0}")]
    Sql(String),
    /// The query ran longer than `limits.query_timeout_secs`.
    #[error("the query ran longer than {seconds} s (limits.query_timeout_secs) and was stopped")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
    /// The result has more rows than `limits.max_result_rows`.
    #[error("the result has more than {limit} rows (limits.max_result_rows); add a LIMIT or aggregate")]
    TooManyRows {
        /// The limit.
        limit: u64,
    },
    /// The query needed more memory than the pool has, even after spilling what can spill.
    #[error("the query needs more than {limit_mb} MiB (limits.memory_mb) even after spilling: {message}")]
    OutOfMemory {
        /// The pool size.
        limit_mb: u64,
        /// DataFusion's account of who asked for what.
        message: String,
    },
    /// A table could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The statement would change something; the endpoint only reads.
    #[error(transparent)]
    ReadOnly(#[from] NotReadOnly),
    /// The caller's role may not read a schema the query names.
    #[error("the {role} role may not read schema {schema}")]
    Forbidden {
        /// The caller's role.
        role: Role,
        /// The schema named.
        schema: String,
    },
    /// The client went away before the last row.
    #[error("the client went away before the last row")]
    Cancelled,
    /// Anything else DataFusion reports while executing.
    #[error("query failed: {0}")]
    Execution(String),
}

impl QueryError {
    /// A stable code for each kind of failure, for APIs and the query log.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Sql(_) => "sql_error",
            QueryError::Timeout { .. } => "timeout",
            QueryError::TooManyRows { .. } => "too_many_rows",
            QueryError::OutOfMemory { .. } => "out_of_memory",
            QueryError::Store(_) => "storage_error",
            QueryError::ReadOnly(_) => "read_only",
            QueryError::Forbidden { .. } => "forbidden",
            QueryError::Cancelled => "cancelled",
            QueryError::Execution(_) => "execution_error",
        }
    }
}

/// A finished query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Row count.
    pub rows: u64,
    /// Wall-clock time, including waiting for a turn.
    pub elapsed: Duration,
}

/// The warehouse of one data directory, with its limits.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Store,
    limits: QueryLimits,
    runtime: Arc<RuntimeEnv>,
    turns: Arc<Semaphore>,
    opened: Arc<OpenedTables>,
    query_log: Option<QueryLog>,
    answers: Arc<crate::result_cache::ResultCache>,
    /// The sessions [`Warehouse::query`] starts from, one per role, built on first use.
    query_sessions: Arc<Mutex<HashMap<Role, SessionState>>>,
}

/// Tables opened at a version, kept so that the next query needs no new read of their logs: a
/// query checks only the name of the newest commit file, and reopens a table when it changed.
#[derive(Debug, Default)]
struct OpenedTables(Mutex<HashMap<(Layer, String), OpenedTable>>);

/// A table's provider and the version it was opened at.
type OpenedTable = (u64, Arc<dyn TableProvider>);

impl OpenedTables {
    async fn latest(&self, store: &Store, layer: Layer, name: &str) -> Result<Arc<dyn TableProvider>, StoreError> {
        let key = (layer, name.to_string());
        let newest = store.latest_version(layer, name);
        let cached = self
            .0
            .lock()
            .expect("never poisoned")
            .get(&key)
            .filter(|(version, _)| Some(*version) == newest)
            .map(|(_, provider)| provider.clone());
        if let Some(provider) = cached {
            return Ok(provider);
        }
        let table = store.open(layer, name, AsOf::Latest).await?;
        let version = table.version();
        let provider: Arc<dyn TableProvider> = Store::provider(&table).await.map_err(|source| StoreError::Query {
            table: format!("{layer}.{name}"),
            source,
        })?;
        if let Some(version) = version {
            self.0
                .lock()
                .expect("never poisoned")
                .insert(key, (version, provider.clone()));
        }
        Ok(provider)
    }
}

/// One layer as a SQL schema: its tables are listed from the data directory and opened at their
/// latest version when a query names them, as the role sees them. Tables registered by hand
/// (the refresh's stand-ins for missing staging tables) take precedence.
#[derive(Debug)]
struct LayerSchema {
    layer: Layer,
    role: Role,
    store: Store,
    opened: Arc<OpenedTables>,
    registered: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

#[async_trait::async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .tables()
            .into_iter()
            .filter(|(layer, _)| *layer == self.layer)
            .map(|(_, name)| name)
            .collect();
        for name in self.registered.lock().expect("never poisoned").keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.registered.lock().expect("never poisoned").get(name) {
            return Ok(Some(table.clone()));
        }
        if !self.store.exists(self.layer, name) {
            return Ok(None);
        }
        let provider = self
            .opened
            .latest(&self.store, self.layer, name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        crate::access::masked(provider, &format!("{}.{name}", self.layer), self.role).map(Some)
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.registered.lock().expect("never poisoned").insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.registered.lock().expect("never poisoned").remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.registered.lock().expect("never poisoned").contains_key(name) || self.store.exists(self.layer, name)
    }
}

impl Warehouse {
    /// The warehouse over `dir`, with one memory pool and spill space for all its queries.
    pub fn new(dir: DataDir, limits: QueryLimits) -> Result<Self, QueryError> {
        let spill = dir.spill();
        std::fs::create_dir_all(&spill)
            .map_err(|e| QueryError::Execution(format!("cannot create the spill folder {}: {e}", spill.display())))?;
        let bytes = usize::try_from(limits.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(crate::memory_pool::QueryMemoryPool::new(bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill])),
            )
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let turns = Arc::new(Semaphore::new(limits.max_concurrent_queries.max(1) as usize));
        // Composed answers are small (aggregates, top lists): a sixteenth of the pool, at most
        // 128 MiB, holds thousands of them.
        let answers = (bytes / 16).min(128 << 20);
        Ok(Self {
            store: Store::new(dir),
            limits,
            runtime,
            turns,
            opened: Arc::default(),
            query_log: None,
            answers: Arc::new(crate::result_cache::ResultCache::new(answers)),
            query_sessions: Arc::default(),
        })
    }

    /// Write tables (refreshes, model outputs, the query log) as `options` say.
    pub fn with_storage(mut self, options: crate::store::StorageOptions) -> Self {
        self.store = self.store.with_options(options);
        self.query_sessions = Arc::default();
        self
    }

    /// Record every query run through [`Warehouse::query`] in `system.query_log`.
    pub fn with_query_log(mut self, log: QueryLog) -> Self {
        self.query_log = Some(log);
        self
    }

    /// The query log, when queries are recorded.
    pub fn query_log(&self) -> Option<&QueryLog> {
        self.query_log.as_ref()
    }

    /// The tables.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The limits in force.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// A session over the latest version of every table, as `layer.name`, sharing the memory
    /// pool. Each table is looked up when a query names it, so new versions are seen at once.
    pub async fn context(&self) -> Result<SessionContext, QueryError> {
        Ok(self.session_for(Role::Admin))
    }

    /// A session with every table `caller` may read, as the caller sees them (personal data
    /// masked where the role says so). Tables are looked up when a query names them, so one
    /// session serves a whole connection and still sees every new version.
    pub fn session_for(&self, role: Role) -> SessionContext {
        let engine = engine_defaults();
        let mut config = engine
            .config
            .clone()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(true)
            .with_default_catalog_and_schema("datafusion", "public");
        config = engine.planner.clone().install(config);
        let pool = self.limits.memory_mb.saturating_mul(1 << 20);
        // A small pool keeps one partition per core, so that each sort still has room to merge
        // what it spilled.
        if let Some(partitions) = engine.large_pool_partitions
            && pool >= (512 << 20)
        {
            config = config.with_target_partitions(partitions);
        }
        // Each sort holds back memory for merging its spill files (10 MB by default): with a small
        // pool and one sort per core, that alone would exhaust it. Hold back a quarter of the pool
        // shared by the partitions instead, at most the default: an eighth proved too little for
        // a merge of wide rows when the other partition's sort held the rest of the pool.
        let partitions = config.target_partitions().max(1) as u64;
        let reserve = (pool / (4 * partitions)).clamp(256 << 10, 10 << 20);
        config.options_mut().execution.sort_spill_reservation_bytes = reserve as usize;
        // Text as plain Utf8: string views share the buffers they were read into, so a sort or a
        // merge holding a few rows is charged for whole buffers and runs out of pool long before
        // the data fills it.
        config.options_mut().execution.parquet.schema_force_view_types = false;
        Store::join_small_tables_whole(&mut config);
        // Merges hold a batch per input in memory; with a small pool, smaller batches.
        if pool < (512 << 20) {
            config = config.with_batch_size(1024);
        }
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_physical_optimizer_rules(crate::self_join::with_default_rules())
            .with_physical_optimizer_rule(Arc::new(crate::partial_aggregate::PartialAggregation))
            .with_physical_optimizer_rule(Arc::new(crate::compact_views::CompactViews))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.add_optimizer_rule(Arc::new(crate::eager_aggregation::EagerAggregation::for_core()));
        crate::functions::register(&ctx);
        ctx.register_udtf(
            "as_of",
            Arc::new(crate::functions::AsOfFunction::new(self.store.clone(), role)),
        );
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog is always created");
        for &layer in role.layers() {
            let schema = LayerSchema {
                layer,
                role,
                store: self.store.clone(),
                opened: self.opened.clone(),
                registered: Mutex::default(),
            };
            catalog
                .register_schema(layer.name(), Arc::new(schema))
                .expect("the default catalog takes schemas");
        }
        ctx
    }

    /// A session for one query of `role`: a copy of one built for the role on first use. Building
    /// one registers every DataFusion function and rule anew, about 5% of the CPU of a query that
    /// takes 2 ms; a copy only clones their maps. The copies share the role's catalog, which is
    /// safe because `query` plans read-only statements only (nothing registers a table or changes a
    /// setting), and each table is still looked up at its latest version when a query names it.
    fn query_session(&self, role: Role) -> SessionContext {
        let state = self
            .query_sessions
            .lock()
            .expect("never poisoned")
            .entry(role)
            .or_insert_with(|| self.session_for(role).state())
            .clone();
        SessionContext::new_with_state(state)
    }

    /// Plan one parsed statement in `ctx` (a session from [`Warehouse::session_for`]) for
    /// `caller`: it must be read-only and name only schemas the caller's role may read. Front ends
    /// with a parser of their own (the PostgreSQL wire protocol's, which rewrites the catalog
    /// queries of BI tools) plan here, so the rules are the same for everyone.
    pub async fn plan_statement(
        &self,
        ctx: &SessionContext,
        statement: DfStatement,
        caller: &Caller,
    ) -> Result<LogicalPlan, QueryError> {
        crate::access::check_read_only(&statement)?;
        let state = ctx.state();
        let references = state
            .resolve_table_references(&statement)
            .map_err(|e| classify(e, &self.limits))?;
        for reference in &references {
            let schema = reference.schema().unwrap_or("public");
            if let Some(layer) = Layer::ALL.into_iter().find(|l| l.name() == schema)
                && !caller.role.reads(layer)
            {
                return Err(QueryError::Forbidden {
                    role: caller.role,
                    schema: layer.name().to_string(),
                });
            }
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| classify(e, &self.limits))?;
        // The same rule again on the plan, in case a statement slipped past the parser check.
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                QueryError::ReadOnly(NotReadOnly {
                    kind: e.strip_backtrace(),
                })
            })?;
        Ok(plan)
    }

    /// Start one query for `caller` under every limit; rows arrive as the stream is polled. The
    /// timeout covers waiting for a turn, planning and every row; the turn is held until the
    /// stream ends or is dropped. When a query log is attached, the query is logged when its
    /// stream ends (or is dropped by a client that went away).
    pub async fn query(&self, query: &str, caller: &Caller, protocol: &str) -> Result<QueryStream, QueryError> {
        let mut stream = self.stream(query, caller, protocol);
        if self.recall(query, caller.role, &mut stream) {
            return Ok(stream);
        }
        let deadline = stream.deadline.deadline();
        let start = async {
            let ctx = self.query_session(caller.role);
            let state = ctx.state();
            let dialect = state.config().options().sql_parser.dialect;
            let statement = state
                .sql_to_statement(query, &dialect)
                .map_err(|e| classify(e, &self.limits))?;
            let plan = self.plan_statement(&ctx, statement, caller).await?;
            if stream.keep.is_some() && !is_repeatable(&plan) {
                stream.keep = None;
            }
            self.start(&ctx, plan, &mut stream).await
        };
        let started = tokio::time::timeout_at(deadline, start).await;
        self.started(stream, started)
    }

    /// Run a plan from [`Warehouse::plan_statement`] under every limit, as [`Warehouse::query`]
    /// does; `sql` is what the query log records. With `by_text` (the plan is `sql` with no
    /// parameters bound, so the text alone decides the rows) the answer comes from, or goes to,
    /// the result cache as [`Warehouse::query`]'s does.
    pub async fn execute(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        sql: &str,
        caller: &Caller,
        protocol: &str,
        by_text: bool,
    ) -> Result<QueryStream, QueryError> {
        let mut stream = self.stream(sql, caller, protocol);
        if by_text && self.recall(sql, caller.role, &mut stream) {
            return Ok(stream);
        }
        if stream.keep.is_some() && !is_repeatable(&plan) {
            stream.keep = None;
        }
        let deadline = stream.deadline.deadline();
        let started = tokio::time::timeout_at(deadline, self.start(ctx, plan, &mut stream)).await;
        self.started(stream, started)
    }

    /// The stream once its start ended: ready, or finished (and logged) with the error or the
    /// timeout that stopped it.
    fn started(
        &self,
        mut stream: QueryStream,
        start: Result<Result<(), QueryError>, tokio::time::error::Elapsed>,
    ) -> Result<QueryStream, QueryError> {
        let error = match start {
            Ok(Ok(())) => return Ok(stream),
            Ok(Err(error)) => error,
            Err(_) => QueryError::Timeout {
                seconds: self.limits.query_timeout_secs,
            },
        };
        stream.finish(Some(&error));
        Err(error)
    }

    /// A BI tool sends the same SQL again and again between two refreshes: while the tables it
    /// reads are unchanged, its rows come from the result cache. Replays the kept answer to `sql`
    /// into `stream` if there is one (true); otherwise readies `stream` to keep its rows under the
    /// versions of the tables it reads (to be undone if its plan is not repeatable).
    fn recall(&self, sql: &str, role: Role, stream: &mut QueryStream) -> bool {
        let Some(versions) = self.versions_read(sql) else {
            return false;
        };
        if let Some(answer) = self.answers.get(role, sql, &versions) {
            stream.replay(answer);
            return true;
        }
        stream.keep = Some(Keep {
            cache: self.answers.clone(),
            role,
            sql: sql.to_string(),
            versions,
            batches: Vec::new(),
            bytes: 0,
        });
        false
    }

    /// Record a query that failed before it could run (at planning), as its stream would have.
    pub fn log_failure(&self, sql: &str, caller: &Caller, protocol: &str, error: &QueryError) {
        self.stream(sql, caller, protocol).finish(Some(error));
    }

    /// A stream not started yet: the clock and the log entry of one query.
    fn stream(&self, sql: &str, caller: &Caller, protocol: &str) -> QueryStream {
        let seconds = self.limits.query_timeout_secs;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let log = self.query_log.clone().map(|log| {
            (
                log,
                QueryLogEntry {
                    user: caller.user.clone(),
                    role: caller.role.to_string(),
                    protocol: protocol.to_string(),
                    started_at: chrono::Utc::now(),
                    sql: sql.to_string(),
                    rows: 0,
                    bytes: 0,
                    duration_ms: 0.0,
                    outcome: "cancelled".into(),
                    message: None,
                },
            )
        });
        QueryStream {
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            batches: None,
            keep: None,
            driver: None,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            turn: None,
            rows: 0,
            bytes: 0,
            limits: self.limits.clone(),
            started: Instant::now(),
            log,
            finished: false,
        }
    }

    /// Wait for a turn and start executing `plan` into `stream`. Execution runs on the query
    /// runtime, never on the caller's: a query that keeps every core busy (a huge cross join)
    /// must not stop the servers' own tasks from answering others or from noticing its deadline.
    async fn start(&self, ctx: &SessionContext, plan: LogicalPlan, stream: &mut QueryStream) -> Result<(), QueryError> {
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut state = ctx.state();
        if let Some(rows) = rows_read(&plan)
            && rows <= SMALL_QUERY_ROWS
        {
            // Each partition costs tasks, channels and a repartition of its rows; over so few rows
            // that costs more than the second core gains (see `SMALL_QUERY_ROWS`).
            state.config_mut().options_mut().execution.target_partitions = 1;
        }
        stream.schema = Arc::new(plan.schema().as_arrow().clone());
        let task = Arc::new(datafusion::execution::TaskContext::from(&state));
        let physical = state
            .create_physical_plan(&plan)
            .await
            .map_err(|e| classify(e, &self.limits))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let driver = query_runtime().spawn(async move {
            let mut batches = match datafusion::physical_plan::execute_stream(physical, task) {
                Ok(batches) => batches,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            while let Some(batch) = batches.next().await {
                if sender.send(batch).await.is_err() {
                    // The reader is gone: dropping the stream stops the plan's tasks.
                    return;
                }
            }
        });
        stream.batches = Some(receiver);
        stream.driver = Some(AbortOnDrop(driver));
        stream.turn = Some(turn);
        Ok(())
    }

    /// Run one query for `caller` and collect its result.
    pub async fn sql_as(&self, query: &str, caller: &Caller, protocol: &str) -> Result<QueryResult, QueryError> {
        let mut stream = self.query(query, caller, protocol).await?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch?);
        }
        Ok(QueryResult {
            schema,
            batches,
            rows: stream.rows,
            elapsed: stream.started.elapsed(),
        })
    }

    /// The newest version of every warehouse table `query` names, or `None` when it names none
    /// or something else (catalog views, unknown schemas), which is then never cached.
    fn versions_read(&self, query: &str) -> Option<crate::result_cache::TableVersions> {
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let mut statements = datafusion::sql::parser::DFParser::parse_sql_with_dialect(query, &dialect).ok()?;
        if statements.len() != 1 {
            return None;
        }
        let statement = statements.pop_front()?;
        // Relations come back sorted and without the query's own CTE names.
        let (relations, _) = datafusion::sql::resolve::resolve_table_references(&statement, true).ok()?;
        if relations.is_empty() {
            return None;
        }
        let mut versions = Vec::with_capacity(relations.len());
        for relation in relations {
            let layer = Layer::ALL.into_iter().find(|l| Some(l.name()) == relation.schema())?;
            let name = relation.table().to_string();
            let version = self.store.latest_version(layer, &name);
            versions.push((layer, name, version));
        }
        Some(versions)
    }

    /// Run one query under every limit, as the local operator, and collect its result.
    pub async fn sql(&self, query: &str) -> Result<QueryResult, QueryError> {
        self.sql_as(query, &Caller::local(), "cli").await
    }
}

/// What every session starts from, worked out once per process (reading the environment and the
/// core count, which on Linux means reading cgroup files, is no work for every query).
struct EngineDefaults {
    /// DataFusion's own options as an operator set them through its environment variables
    /// (`DATAFUSION_EXECUTION_BATCH_SIZE=16384`, ...); the settings [`Warehouse::session_for`]
    /// makes after it (limits, text types, joins) win over them.
    config: SessionConfig,
    /// The warehouse's own optimizer rules as the environment sets them (`TRIBUTARY_*`, all on
    /// by default).
    planner: PlannerOptions,
    /// Partitions for a pool of 512 MiB or more, unless the operator chose them: two per core
    /// (DataFusion's default is one), as the query runtime has two threads per core, so while one
    /// partition waits for its input (Parquet decoding, a repartition channel) the core runs
    /// another. Measured on two cores and ten million order lines: the refresh 22.2 s -> 20.8 s,
    /// the analyst queries 6-20% faster, the millisecond ones a millisecond or two slower.
    large_pool_partitions: Option<usize>,
}

fn engine_defaults() -> &'static EngineDefaults {
    static DEFAULTS: std::sync::OnceLock<EngineDefaults> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let config = SessionConfig::from_env().unwrap_or_else(|e| {
            tracing::warn!("ignoring the DATAFUSION_* environment variables: {e}");
            SessionConfig::new()
        });
        let chosen = std::env::var_os("DATAFUSION_EXECUTION_TARGET_PARTITIONS").is_some();
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let planner = PlannerOptions::from_env().unwrap_or_else(|e| {
            tracing::warn!("ignoring the TRIBUTARY_* planner variables: {e}");
            PlannerOptions::default()
        });
        EngineDefaults {
            config,
            planner,
            large_pool_partitions: (!chosen).then_some(2 * cores),
        }
    })
}

/// The threads that execute queries, apart from the threads that serve clients. Twice as many as
/// cores: an operator can compute for seconds between two points where it yields (a nested loop
/// join that finds no matches), and with a thread per core such a query would hold every thread
/// and starve the others; with more threads the operating system shares the cores among them.
fn query_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads((2 * cores).max(4))
            .thread_name("tributary-query")
            .enable_all()
            .build()
            .expect("the query runtime starts")
    })
}

/// A query that reads at most this many rows in all is planned in one partition. Measured on two
/// cores (seventeenth session, 4 partitions against 1, 5 s of repeats each, twice): the RFM query
/// (two marts of 80,000 rows joined) 19.1-19.6 -> 16.1-17.5 ms, cohort retention (a mart of a few
/// thousand rows) 5.2 -> 4.3 ms; queries over a million rows or more took 1.8-3.2 times as long in
/// one partition. Where between the two it stops paying was not measured.
const SMALL_QUERY_ROWS: usize = 200_000;

/// How many rows `plan` reads from its tables in all, by their statistics; `None` when a table
/// does not say (a view, a table function).
fn rows_read(plan: &LogicalPlan) -> Option<usize> {
    use datafusion::common::stats::Precision;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::source_as_provider;
    let mut total = Some(0usize);
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let rows = source_as_provider(&scan.source)
                .ok()
                .and_then(|provider| provider.statistics())
                .and_then(|statistics| match statistics.num_rows {
                    Precision::Exact(rows) | Precision::Inexact(rows) => Some(rows),
                    Precision::Absent => None,
                });
            total = total.zip(rows).map(|(total, rows)| total.saturating_add(rows));
            if total.is_none() {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

/// Whether running `plan` again on the same table versions gives the same rows: it calls no
/// function whose answer may change from one call to the next (`now()`, `current_date`,
/// `random()`, ...; DataFusion marks them stable or volatile).
fn is_repeatable(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, Volatility};
    let mut repeatable = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(call) = e
                    && call.func.signature().volatility != Volatility::Immutable
                {
                    repeatable = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if repeatable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    repeatable
}

/// The rows of a repeatable query as they stream past, to be kept in the result cache once the
/// last one has gone out (and given up as soon as they outgrow what the cache would keep).
struct Keep {
    cache: Arc<crate::result_cache::ResultCache>,
    role: Role,
    sql: String,
    versions: crate::result_cache::TableVersions,
    batches: Vec<RecordBatch>,
    bytes: usize,
}

/// Stops a query's driver task when its stream goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The rows of a running query, checked against the row cap and the deadline as they come.
pub struct QueryStream {
    schema: SchemaRef,
    batches: Option<tokio::sync::mpsc::Receiver<datafusion::error::Result<RecordBatch>>>,
    keep: Option<Keep>,
    driver: Option<AbortOnDrop>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    turn: Option<OwnedSemaphorePermit>,
    rows: u64,
    bytes: u64,
    limits: QueryLimits,
    started: Instant,
    log: Option<(QueryLog, QueryLogEntry)>,
    finished: bool,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("schema", &self.schema)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl QueryStream {
    /// Column names and types.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Time since the query arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stream a kept answer: its rows pass the same row cap and deadline, and it is logged like
    /// any other query, but it takes no turn.
    fn replay(&mut self, answer: QueryResult) {
        let (sender, receiver) = tokio::sync::mpsc::channel(answer.batches.len().max(1));
        for batch in answer.batches {
            let _ = sender.try_send(Ok(batch));
        }
        self.schema = answer.schema;
        self.batches = Some(receiver);
    }

    /// End the query: give back its turn and log how it went.
    fn finish(&mut self, error: Option<&QueryError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if error.is_none()
            && let Some(keep) = self.keep.take()
        {
            let answer = QueryResult {
                schema: self.schema.clone(),
                batches: keep.batches,
                rows: self.rows,
                elapsed: self.started.elapsed(),
            };
            keep.cache.put(keep.role, &keep.sql, keep.versions, &answer);
        }
        self.keep = None;
        self.batches = None;
        self.driver = None;
        self.turn = None;
        if let Some((log, mut entry)) = self.log.take() {
            entry.rows = self.rows;
            entry.bytes = self.bytes;
            entry.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            match error {
                None => entry.outcome = "ok".into(),
                Some(error) => {
                    entry.outcome = error.code().into();
                    entry.message = Some(error.to_string());
                }
            }
            log.record(entry);
        }
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let error = QueryError::Timeout {
                seconds: this.limits.query_timeout_secs,
            };
            this.finish(Some(&error));
            return Poll::Ready(Some(Err(error)));
        }
        let Some(batches) = this.batches.as_mut() else {
            return Poll::Ready(None);
        };
        match batches.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let error = classify(e, &this.limits);
                this.finish(Some(&error));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(batch))) => {
                this.rows += batch.num_rows() as u64;
                this.bytes += batch.get_array_memory_size() as u64;
                if this.rows > this.limits.max_result_rows {
                    let error = QueryError::TooManyRows {
                        limit: this.limits.max_result_rows,
                    };
                    this.finish(Some(&error));
                    return Poll::Ready(Some(Err(error)));
                }
                if let Some(keep) = this.keep.as_mut() {
                    keep.bytes += batch.get_array_memory_size();
                    if keep.bytes > keep.cache.largest_answer() {
                        this.keep = None;
                    } else {
                        keep.batches.push(batch.clone());
                    }
                }
                Poll::Ready(Some(Ok(batch)))
            }
        }
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        if !self.finished {
            // The reader went away before the last row (a client disconnected or cancelled).
            let error = QueryError::Cancelled;
            self.finish(Some(&error));
        }
    }
}

/// Rows as JSON objects, one per row, nulls included, keyed by column name.
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, QueryError> {
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer
        .write_batches(&refs)
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    writer.finish().map_err(|e| QueryError::Execution(e.to_string()))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| QueryError::Execution(e.to_string()))
}

/// Sort DataFusion's errors into ours.
fn classify(error: DataFusionError, limits: &QueryLimits) -> QueryError {
    let root = error.find_root();
    match root {
        DataFusionError::ResourcesExhausted(message) => QueryError::OutOfMemory {
            limit_mb: limits.memory_mb,
            message: message.clone(),
        },
        DataFusionError::SQL(..) | DataFusionError::Plan(..) | DataFusionError::SchemaError(..) => {
            QueryError::Sql(root.to_string())
        }
        _ => QueryError::Execution(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composed_query_is_keyed_by_the_tables_it_reads_not_its_ctes() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::new(DataDir::new(dir.path()), QueryLimits::default()).unwrap();
        let (sql, _) = crate::semantic::plan(&crate::semantic::MetricQuery {
            measures: vec!["revenue".into(), "average_order_value".into()],
            dimensions: vec!["region".into()],
            ..Default::default()
        })
        .unwrap();
        let read = warehouse.versions_read(&sql).unwrap();
        let names: Vec<String> = read.iter().map(|(l, n, _)| format!("{l}.{n}")).collect();
        assert_eq!(names, vec!["marts.orders_daily", "marts.sales_daily"], "{sql}");
        // Catalog views and table-less queries are not cached.
        assert!(
            warehouse
                .versions_read("SELECT * FROM information_schema.tables")
                .is_none()
        );
        assert!(warehouse.versions_read("SELECT 1").is_none());
    }

    async fn rows_of(warehouse: &Warehouse, sql: &str) -> Vec<String> {
        let stream = warehouse.query(sql, &Caller::local(), "http").await.unwrap();
        let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
        text.to_string().lines().map(str::to_string).collect()
    }

    #[tokio::test]
    async fn repeatable_sql_is_answered_from_the_cache_until_its_table_changes() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::new(DataDir::new(dir.path()), QueryLimits::default()).unwrap();
        let write = |values: Vec<i64>| {
            let schema = Arc::new(Schema::new(vec![Field::new("units", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap();
            let store = warehouse.store().clone();
            async move {
                store
                    .replace(Layer::Marts, "stock", vec![batch], serde_json::Map::new())
                    .await
                    .unwrap()
            }
        };
        write(vec![1, 2, 3]).await;
        let sql = "SELECT sum(units) AS units FROM marts.stock";
        let kept = |w: &Warehouse, sql: &str| {
            let versions = w.versions_read(sql).unwrap();
            w.answers.get(Role::Admin, sql, &versions).map(|a| a.rows)
        };
        assert_eq!(kept(&warehouse, sql), None);
        let first = rows_of(&warehouse, sql).await;
        assert!(first.iter().any(|l| l.contains("| 6 ")), "{first:?}");
        assert_eq!(kept(&warehouse, sql), Some(1), "kept once streamed to the end");
        assert_eq!(rows_of(&warehouse, sql).await, first);
        // A new version of the table: the kept answer no longer matches, the rows are fresh.
        write(vec![10, 20]).await;
        assert_eq!(kept(&warehouse, sql), None);
        let fresh = rows_of(&warehouse, sql).await;
        assert!(fresh.iter().any(|l| l.contains("| 30 ")), "{fresh:?}");
        // The PostgreSQL endpoint's path, a plan with its text: recalled by the text when no
        // parameters were bound (shown here with a plan that would answer 0), run otherwise.
        let ctx = warehouse.session_for(Role::Admin);
        let other = ctx
            .state()
            .create_logical_plan("SELECT CAST(0 AS BIGINT) AS units")
            .await
            .unwrap();
        let run = |by_text: bool| {
            let (ctx, other) = (ctx.clone(), other.clone());
            let warehouse = &warehouse;
            async move {
                let stream = warehouse
                    .execute(&ctx, other, sql, &Caller::local(), "pg", by_text)
                    .await
                    .unwrap();
                let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        assert!(run(true).await.contains("| 30 "), "recalled");
        assert!(run(false).await.contains("| 0 "), "run");
        // Answers that may change between calls are never kept.
        let clock = "SELECT now() AS at, sum(units) AS units FROM marts.stock";
        rows_of(&warehouse, clock).await;
        assert_eq!(kept(&warehouse, clock), None);
    }

    #[tokio::test]
    async fn a_query_over_few_rows_runs_in_one_partition() {
        use datafusion::arrow::array::{ArrayRef, Int64Array};
        let dir = tempfile::tempdir().unwrap();
        // A pool of 512 MiB or more plans two partitions per core.
        let limits = QueryLimits {
            memory_mb: 1024,
            ..QueryLimits::default()
        };
        let warehouse = Warehouse::new(DataDir::new(dir.path()), limits).unwrap();
        let rows = |count: i64| {
            RecordBatch::try_from_iter([
                (
                    "cohort",
                    Arc::new(Int64Array::from_iter_values((0..count).map(|i| i % 7))) as ArrayRef,
                ),
                ("units", Arc::new(Int64Array::from_iter_values(0..count))),
            ])
            .unwrap()
        };
        let few = (SMALL_QUERY_ROWS / 2) as i64;
        let many = SMALL_QUERY_ROWS as i64 + 1;
        for (name, count) in [("few", few), ("many", many)] {
            warehouse
                .store()
                .replace(Layer::Marts, name, vec![rows(count)], serde_json::Map::new())
                .await
                .unwrap();
        }
        let grouped =
            |table: &str| format!("SELECT cohort, SUM(units) AS units FROM marts.{table} GROUP BY 1 ORDER BY 1");
        let plan = rows_of(&warehouse, &format!("EXPLAIN {}", grouped("few")))
            .await
            .join("\n");
        assert!(!plan.contains("RepartitionExec"), "{plan}");
        let plan = rows_of(&warehouse, &format!("EXPLAIN {}", grouped("many")))
            .await
            .join("\n");
        assert!(plan.contains("RepartitionExec"), "{plan}");
        // Both tables together are more than few rows.
        let both =
            "SELECT f.cohort, SUM(m.units) AS units FROM marts.few f JOIN marts.many m ON m.units = f.units GROUP BY 1";
        let plan = rows_of(&warehouse, &format!("EXPLAIN {both}")).await.join("\n");
        assert!(plan.contains("RepartitionExec"), "{plan}");
        // The answers are the same whatever the partitions: 7 cohorts, each sum counted by hand.
        let answer = rows_of(&warehouse, &grouped("few")).await;
        let expected: i64 = (0..few).filter(|i| i % 7 == 3).sum();
        assert!(answer[6].contains(&format!("| {expected} ")), "{answer:?}");
    }

    #[tokio::test]
    async fn sums_over_a_join_are_taken_before_it_in_every_session() {
        use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::new(DataDir::new(dir.path()), QueryLimits::default()).unwrap();
        let sales = RecordBatch::try_from_iter([
            ("customer_key", Arc::new(Int64Array::from(vec![1, 1, 2, 3])) as ArrayRef),
            ("units", Arc::new(Int64Array::from(vec![5, 7, 11, 13]))),
        ])
        .unwrap();
        let customers = RecordBatch::try_from_iter([
            ("customer_key", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("region", Arc::new(StringArray::from(vec!["North", "South", "North"]))),
        ])
        .unwrap();
        for (layer, name, batch) in [(Layer::Marts, "sale", sales), (Layer::Core, "customer", customers)] {
            warehouse
                .store()
                .replace(layer, name, vec![batch], serde_json::Map::new())
                .await
                .unwrap();
        }
        let sql = "SELECT c.region, SUM(s.units) AS units, COUNT(*) AS sales FROM marts.sale s \
                   JOIN core.customer c ON c.customer_key = s.customer_key GROUP BY 1 ORDER BY 1";
        let plan = rows_of(&warehouse, &format!("EXPLAIN {sql}")).await.join("\n");
        assert!(plan.contains("__eager_"), "{plan}");
        let rows = rows_of(&warehouse, sql).await;
        assert_eq!(
            rows[3..5],
            ["| North  | 25    | 3     |", "| South  | 11    | 1     |"],
            "{rows:?}"
        );
    }
}
