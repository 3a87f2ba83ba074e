//! Running pipelines over a landing folder, one file, or a pushed body.

use std::path::Path;

use chrono::Utc;
use serde::Serialize;
use tributary_warehouse::store::Store;

use crate::batch::{self, BatchReport, BatchStatus, IngestError, InputId};
use crate::pipeline::{Pipeline, PipelineError, ResolvedTarget, SAMPLE_COMPANY_TOML, parse_pipelines};
use crate::source::database::{self, Database, DatabaseError};
use crate::source::file::{RecordReader, SourceError};
use crate::source::{landing, push};

/// Checked pipelines, in the order they run.
#[derive(Debug, Clone)]
pub struct Pipelines {
    list: Vec<(Pipeline, Vec<ResolvedTarget>)>,
}

impl Pipelines {
    /// Check every pipeline; names must be unique.
    pub fn new(mut pipelines: Vec<Pipeline>) -> Result<Self, PipelineError> {
        let mut list = Vec::with_capacity(pipelines.len());
        let originals = pipelines.clone();
        for p in &mut pipelines {
            if let Some(other) = &p.targets_of {
                let from = originals
                    .iter()
                    .find(|o| &o.name == other)
                    .ok_or_else(|| PipelineError {
                        pipeline: p.name.clone(),
                        key: "targets_of".into(),
                        message: format!("no pipeline is called `{other}`"),
                    })?;
                p.targets = from.targets.clone();
            }
        }
        for p in pipelines {
            if list.iter().any(|(q, _): &(Pipeline, _)| q.name == p.name) {
                return Err(PipelineError {
                    pipeline: p.name.clone(),
                    key: "name".into(),
                    message: "two pipelines have this name".into(),
                });
            }
            let targets = p.resolve()?;
            list.push((p, targets));
        }
        Ok(Self { list })
    }

    /// The built-in mappings of the sample company's exports.
    pub fn sample_company() -> Vec<Pipeline> {
        parse_pipelines(SAMPLE_COMPANY_TOML, "the built-in sample company pipelines")
            .expect("the built-in pipelines parse (a unit test checks)")
    }

    /// The pipeline called `name`.
    pub fn get(&self, name: &str) -> Option<(&Pipeline, &[ResolvedTarget])> {
        self.list
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(p, t)| (p, t.as_slice()))
    }

    /// Every pipeline in run order.
    pub fn iter(&self) -> impl Iterator<Item = (&Pipeline, &[ResolvedTarget])> {
        self.list.iter().map(|(p, t)| (p, t.as_slice()))
    }
}

/// A file that could not be read and was set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedFile {
    /// Path relative to the landing folder.
    pub file: String,
    /// The error, naming file and row.
    pub reason: String,
    /// Where the file went.
    pub moved_to: String,
}

/// What one run over a folder did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// One per file and pipeline.
    pub batches: Vec<BatchReport>,
    /// Files no pipeline reads.
    pub unmatched: Vec<String>,
    /// Files that could not be read.
    pub rejected: Vec<RejectedFile>,
}

/// Progress: the file being read and rows read from it so far.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64) + Sync);

/// Ingest every file under `dir` that a pipeline of `source` matches, pipeline by pipeline.
pub async fn ingest_folder(
    store: &Store,
    pipelines: &Pipelines,
    dir: &Path,
    source: &str,
    progress: ProgressFn<'_>,
) -> Result<RunReport, IngestError> {
    let files = landing::scan(dir)?;
    let mut report = RunReport::default();
    let mut matched = vec![false; files.len()];
    for (pipeline, targets) in pipelines.iter() {
        if pipeline.source != source {
            continue;
        }
        for (i, file) in files.iter().enumerate() {
            if !pipeline.matches_file(&file.relative) || !file.path.exists() {
                continue;
            }
            matched[i] = true;
            match ingest_file(store, pipeline, targets, &file.path, &file.relative, source, progress).await {
                Ok(batch) => report.batches.push(batch),
                Err(IngestError::Source(e)) => {
                    let reason = e.to_string();
                    let moved = landing::set_aside(dir, file, &reason).map_err(|io| SourceError::Read {
                        path: file.path.clone(),
                        message: format!("cannot move the file aside: {io}"),
                    })?;
                    tracing::warn!(file = %file.relative, %reason, "file set aside");
                    let rejected = rejected_report(pipeline, source, &file.relative, &reason);
                    batch::log_batch(
                        store,
                        &rejected,
                        Utc::now(),
                        &format!("tributary.rejected.{}", rejected.batch_id),
                    )
                    .await?;
                    report.batches.push(rejected);
                    report.rejected.push(RejectedFile {
                        file: file.relative.clone(),
                        reason,
                        moved_to: moved.display().to_string(),
                    });
                }
                Err(other) => return Err(other),
            }
        }
    }
    report.unmatched = files
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(f, _)| f.relative.clone())
        .collect();
    Ok(report)
}

fn rejected_report(pipeline: &Pipeline, source: &str, file: &str, reason: &str) -> BatchReport {
    let hash = landing::bytes_hash(format!("{file}\n{reason}\n{}", Utc::now().timestamp_micros()).as_bytes());
    BatchReport {
        batch_id: format!("{}-{}", pipeline.name, &hash[..16]),
        pipeline: pipeline.name.clone(),
        source: source.to_string(),
        file: file.to_string(),
        content_hash: String::new(),
        status: BatchStatus::Rejected,
        rows_read: 0,
        rows_stored: 0,
        rows_quarantined: 0,
        rows_duplicate: 0,
        targets: Vec::new(),
        message: Some(reason.to_string()),
    }
}

/// Ingest one file through one pipeline. `label` names the file in lineage (its landing path).
pub async fn ingest_file(
    store: &Store,
    pipeline: &Pipeline,
    targets: &[ResolvedTarget],
    path: &Path,
    label: &str,
    source: &str,
    progress: ProgressFn<'_>,
) -> Result<BatchReport, IngestError> {
    let content_hash = landing::content_hash(path)?;
    let input = InputId {
        source: source.to_string(),
        file: label.to_string(),
        content_hash,
    };
    let reader = RecordReader::open(path, &pipeline.format, &wanted_columns(targets))?;
    let file_progress = |rows: u64| progress(label, rows);
    batch::ingest(store, pipeline, targets, &input, reader, &file_progress).await
}

/// Land one file as a plain table `raw.<table>`, with no canonical entity.
pub async fn ingest_as_raw(
    store: &Store,
    path: &Path,
    table: &str,
    progress: ProgressFn<'_>,
) -> Result<BatchReport, IngestError> {
    let pipeline = Pipeline {
        name: table.to_string(),
        source: "file".into(),
        files: None,
        table: None,
        watermark: None,
        targets_of: None,
        raw_types: Default::default(),
        format: Default::default(),
        raw_table: None,
        targets: Vec::new(),
    };
    pipeline.resolve().map_err(|e| SourceError::Read {
        path: path.to_path_buf(),
        message: format!("raw.{table}: {}", e.message),
    })?;
    let label = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    ingest_file(
        store,
        &pipeline,
        &[],
        path,
        &label.display().to_string(),
        "file",
        progress,
    )
    .await
}

/// Ingest a pushed body (NDJSON, CSV or Parquet) through the pipeline called `name`.
pub async fn ingest_push(
    store: &Store,
    pipelines: &Pipelines,
    name: &str,
    body: bytes::Bytes,
    content_type: Option<&str>,
) -> Result<BatchReport, PushError> {
    let (pipeline, targets) = pipelines
        .get(name)
        .ok_or_else(|| PushError::UnknownPipeline(name.to_string()))?;
    let content_hash = landing::bytes_hash(&body);
    let label = push::push_name(&content_hash);
    let format = push::format_for_content_type(content_type, &pipeline.format);
    let input = InputId {
        source: "http".into(),
        file: label.display().to_string(),
        content_hash,
    };
    let reader =
        RecordReader::from_bytes(&label, body, &format, &wanted_columns(targets)).map_err(IngestError::from)?;
    Ok(batch::ingest(store, pipeline, targets, &input, reader, &|_| {}).await?)
}

/// Pull new and changed rows of every pipeline whose source is `db`.
pub async fn pull_database(store: &Store, pipelines: &Pipelines, db: &Database) -> Result<Vec<BatchReport>, PullError> {
    let mut reports = Vec::new();
    for (pipeline, targets) in pipelines.iter() {
        if pipeline.source != db.name {
            continue;
        }
        let (Some(table), Some(watermark)) = (&pipeline.table, &pipeline.watermark) else {
            continue;
        };
        let after = database::last_watermark(store, &pipeline.name)
            .await
            .map_err(IngestError::from)?;
        let pulled = database::pull(db, table, watermark, after.as_deref()).await?;
        let input = InputId {
            source: db.name.clone(),
            file: pulled.query.clone(),
            content_hash: pulled.content_hash(),
        };
        let name = std::path::PathBuf::from(format!("{}:{table}", db.name));
        let high = pulled.high_watermark.clone();
        let reader = RecordReader::from_rows(&name, pulled.columns, pulled.rows);
        let report = batch::ingest(store, pipeline, targets, &input, reader, &|_| {}).await?;
        if let Some(high) = high {
            database::store_watermark(store, &pipeline.name, db, table, watermark, &high, &report.batch_id)
                .await
                .map_err(IngestError::from)?;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// A pull that failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The database could not be read.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The batch failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// A push that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No pipeline has this name.
    #[error("no pipeline is called `{0}`")]
    UnknownPipeline(String),
    /// The body or the tables failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Source columns the targets read, so NDJSON records expose them even when the first lacks them.
fn wanted_columns(targets: &[ResolvedTarget]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        for c in &t.columns {
            if let Some(from) = &c.rule.from
                && !out.contains(from)
            {
                out.push(from.clone());
            }
        }
    }
    out
}
