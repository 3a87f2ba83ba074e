//! The one way queries run: every front end (CLI `sql`, HTTP, PostgreSQL wire, dashboards, jobs)
//! calls [`Warehouse::sql`], so all of them see the same tables and the same limits.
//!
//! Limits from `[limits]`: one memory pool shared by all running queries (operators that can spill
//! do so to `<data-dir>/spill` when it is full), a wall-clock timeout over the whole query (waiting
//! for a turn, planning and execution), a cap on result rows, and a cap on queries running at once
//! (later ones wait their turn). Each breach is its own [`QueryError`] variant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::layout::{DataDir, Layer};
use crate::limits::QueryLimits;
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
    /// Anything else DataFusion reports while executing.
    #[error("query failed: {0}")]
    Execution(String),
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
}

impl Warehouse {
    /// The warehouse over `dir`, with one memory pool and spill space for all its queries.
    pub fn new(dir: DataDir, limits: QueryLimits) -> Result<Self, QueryError> {
        let spill = dir.spill();
        std::fs::create_dir_all(&spill)
            .map_err(|e| QueryError::Execution(format!("cannot create the spill folder {}: {e}", spill.display())))?;
        let bytes = usize::try_from(limits.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill])),
            )
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let turns = Arc::new(Semaphore::new(limits.max_concurrent_queries.max(1) as usize));
        Ok(Self {
            store: Store::new(dir),
            limits,
            runtime,
            turns,
        })
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
    /// pool. Made per query, so new table versions are seen without a restart.
    pub async fn context(&self) -> Result<SessionContext, QueryError> {
        self.session(None).await
    }

    /// A session for `only_for` (with just the tables it names), or for anything.
    async fn session(&self, only_for: Option<&str>) -> Result<SessionContext, QueryError> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(true)
            .with_default_catalog_and_schema("datafusion", "public");
        // Each sort holds back memory for merging its spill files (10 MB by default): with a small
        // pool and one sort per core, that alone would exhaust it. Hold back a quarter of the pool
        // shared by the partitions instead, at most the default: an eighth proved too little for
        // a merge of wide rows when the other partition's sort held the rest of the pool.
        let pool = self.limits.memory_mb.saturating_mul(1 << 20);
        let partitions = config.target_partitions().max(1) as u64;
        let reserve = (pool / (4 * partitions)).clamp(256 << 10, 10 << 20);
        config.options_mut().execution.sort_spill_reservation_bytes = reserve as usize;
        // Text as plain Utf8: string views share the buffers they were read into, so a sort or a
        // merge holding a few rows is charged for whole buffers and runs out of pool long before
        // the data fills it.
        config.options_mut().execution.parquet.schema_force_view_types = false;
        // Merges hold a batch per input in memory; with a small pool, smaller batches.
        if pool < (512 << 20) {
            config = config.with_batch_size(1024);
        }
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        crate::functions::register(&ctx);
        ctx.register_udtf(
            "as_of",
            Arc::new(crate::functions::AsOfFunction::new(self.store.clone())),
        );
        let tables = self.store.tables();
        // Opening a Delta table reads its log, which costs more than a small query: for one query,
        // open only the tables it names. Everything when it names something else (the catalog,
        // SHOW TABLES) or cannot be parsed here (it will fail with a proper message later).
        let named: Option<Vec<(Layer, String)>> = only_for.and_then(|query| {
            let state = ctx.state();
            let statement = state
                .sql_to_statement(query, &datafusion::config::Dialect::Generic)
                .ok()?;
            if !matches!(statement, datafusion::sql::parser::Statement::Statement(ref s) if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_))) {
                return None;
            }
            let mut named = Vec::new();
            for reference in state.resolve_table_references(&statement).ok()? {
                let layer = Layer::ALL.into_iter().find(|l| Some(l.name()) == reference.schema())?;
                if tables.iter().any(|(l, n)| *l == layer && n == reference.table()) {
                    named.push((layer, reference.table().to_string()));
                }
            }
            Some(named)
        });
        for (layer, name) in named.unwrap_or(tables) {
            self.store.register(&ctx, layer, &name, AsOf::Latest).await?;
        }
        // Empty schemas exist too, so `SHOW TABLES` and BI tools see the whole layout.
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog is always created");
        for layer in Layer::ALL {
            if catalog.schema(layer.name()).is_none() {
                catalog
                    .register_schema(layer.name(), Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
                    .map_err(|e| QueryError::Execution(e.to_string()))?;
            }
        }
        Ok(ctx)
    }

    /// Run one query under every limit and collect its result.
    pub async fn sql(&self, query: &str) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let seconds = self.limits.query_timeout_secs;
        let run = async {
            let _turn = self.turns.acquire().await.expect("the semaphore is never closed");
            let ctx = self.session(Some(query)).await?;
            let frame = ctx.sql(query).await.map_err(|e| classify(e, &self.limits))?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame.execute_stream().await.map_err(|e| classify(e, &self.limits))?;
            let mut batches = Vec::new();
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| classify(e, &self.limits))?;
                rows += batch.num_rows() as u64;
                if rows > self.limits.max_result_rows {
                    return Err(QueryError::TooManyRows {
                        limit: self.limits.max_result_rows,
                    });
                }
                batches.push(batch);
            }
            Ok((schema, batches, rows))
        };
        let (schema, batches, rows) = tokio::time::timeout(Duration::from_secs(seconds), run)
            .await
            .map_err(|_| QueryError::Timeout { seconds })??;
        Ok(QueryResult {
            schema,
            batches,
            rows,
            elapsed: started.elapsed(),
        })
    }
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
