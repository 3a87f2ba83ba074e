//! `ingest`, `optimize` and `vacuum`: the ingest crate from the command line.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tributary_ingest::batch::{BatchReport, BatchStatus};
use tributary_ingest::run::{self, Pipelines, RunReport};
use tributary_ingest::source::database::{Database, DatabaseKind};
use tributary_warehouse::layout::Layer;
use tributary_warehouse::store::Store;

use crate::cli::{IngestArgs, MaintainArgs, OutputFormat};
use crate::config::{Config, SourceKind};

/// A spinner with the file being read, rows so far and rows per second.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:40} {pos:>12} rows  {per_sec:>14}  [{elapsed_precise}]")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `tributary ingest`.
pub async fn ingest(config: &Config, args: IngestArgs) -> anyhow::Result<()> {
    let store = config.store();
    let pipelines = config.pipelines()?;
    if let Some(table) = &args.table {
        let Some(file) = &args.from else {
            bail!("--table needs --from FILE");
        };
        let name = table.strip_prefix("raw.").unwrap_or(table);
        let bar = progress_bar();
        let report = run::ingest_as_raw(&store, file, name, &|f, rows| {
            bar.set_message(f.to_string());
            bar.set_position(rows);
        })
        .await;
        bar.finish_and_clear();
        let report = report.with_context(|| format!("ingesting {} into raw.{name}", file.display()))?;
        let run = RunReport {
            batches: vec![report],
            ..RunReport::default()
        };
        return print_report(&run, args.format);
    }
    loop {
        let started = Instant::now();
        let run = ingest_once(config, &store, &pipelines, args.from.as_deref()).await?;
        if args.watch {
            // Quiet when nothing new arrived, so a watched folder does not fill the terminal.
            let new = run.batches.iter().any(|b| b.status == BatchStatus::Committed);
            if new {
                report_and_refresh(config, &run, args.format).await.ok();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(config.ingest.watch_interval_secs.max(1))) => continue,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "ingest finished");
        return report_and_refresh(config, &run, args.format).await;
    }
}

/// Print the batch reports and bring `core` and `marts` up to date with what was stored, even when
/// some files were set aside (then the result is an error naming them). As JSON, one object: the
/// run's report with the refresh's under `refresh`.
async fn report_and_refresh(config: &Config, run: &RunReport, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            let printed = print_report(run, format);
            crate::refresh::refresh_core(config, format).await?;
            printed
        }
        OutputFormat::Json => {
            let refreshed = crate::refresh::refresh_core(config, format).await?;
            let mut value = serde_json::to_value(run)?;
            value["refresh"] = serde_json::to_value(&refreshed)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            set_aside(run)
        }
    }
}

/// One pass over the landing folder (or `--from`) and every configured file source.
pub async fn ingest_once(
    config: &Config,
    store: &Store,
    pipelines: &Pipelines,
    from: Option<&Path>,
) -> anyhow::Result<RunReport> {
    let bar = progress_bar();
    let progress = |file: &str, rows: u64| {
        bar.set_message(file.to_string());
        bar.set_position(rows);
    };
    let landing = from.map_or_else(|| store.dir().landing(), Path::to_path_buf);
    if !landing.is_dir() {
        bar.finish_and_clear();
        bail!(
            "{} is not a directory (run `tributary generate` to fill the landing directory, or give --from DIR)",
            landing.display()
        );
    }
    let mut report = run::ingest_folder(store, pipelines, &landing, "landing", &progress)
        .await
        .with_context(|| format!("ingesting {}", landing.display()))?;
    if from.is_none() {
        for source in config.sources.iter().filter(|s| s.kind == SourceKind::Files) {
            let dir = source.path.as_deref().expect("validated: file sources have a path");
            let more = run::ingest_folder(store, pipelines, dir, &source.name, &progress)
                .await
                .with_context(|| format!("ingesting source {} ({})", source.name, dir.display()))?;
            report.batches.extend(more.batches);
            report.rejected.extend(more.rejected);
        }
        for source in &config.sources {
            let kind = match source.kind {
                SourceKind::Postgres => DatabaseKind::Postgres,
                SourceKind::Mysql => DatabaseKind::Mysql,
                _ => continue,
            };
            let db = Database {
                name: source.name.clone(),
                kind,
                url: source.url.clone().expect("validated: database sources have a url"),
            };
            bar.set_message(format!("pulling {}", source.name));
            let pulled = run::pull_database(store, pipelines, &db)
                .await
                .with_context(|| format!("pulling from source {}", source.name))?;
            report.batches.extend(pulled);
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Print the batch reports; an error when files were set aside.
pub fn print_report(run: &RunReport, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(run)?),
        OutputFormat::Table => {
            println!(
                "{:<26} {:<38} {:<17} {:>10} {:>10} {:>11} {:>10}",
                "pipeline", "file", "status", "read", "stored", "quarantined", "duplicate"
            );
            for b in &run.batches {
                println!(
                    "{:<26} {:<38} {:<17} {:>10} {:>10} {:>11} {:>10}",
                    b.pipeline,
                    shorten(&b.file, 38),
                    status(b),
                    b.rows_read,
                    b.rows_stored,
                    b.rows_quarantined,
                    b.rows_duplicate
                );
            }
            let total = |f: fn(&BatchReport) -> u64| run.batches.iter().map(f).sum::<u64>();
            println!(
                "{:<26} {:<38} {:<17} {:>10} {:>10} {:>11} {:>10}",
                "total",
                "",
                "",
                total(|b| b.rows_read),
                total(|b| b.rows_stored),
                total(|b| b.rows_quarantined),
                total(|b| b.rows_duplicate)
            );
            if total(|b| b.rows_quarantined) > 0 {
                println!("Quarantined rows, with file, row, field and reason, are in system.quarantine (by batch_id).");
            }
            for file in &run.unmatched {
                println!("No pipeline reads {file}; add one to the configuration to ingest it.");
            }
        }
    }
    set_aside(run)
}

/// An error naming the files that could not be read (each also on standard error).
fn set_aside(run: &RunReport) -> anyhow::Result<()> {
    for rejected in &run.rejected {
        eprintln!("error: {} (moved to {})", rejected.reason, rejected.moved_to);
    }
    if !run.rejected.is_empty() {
        bail!("{} file(s) could not be read and were set aside", run.rejected.len());
    }
    Ok(())
}

fn status(b: &BatchReport) -> &'static str {
    match b.status {
        BatchStatus::Committed => "committed",
        BatchStatus::AlreadyIngested => "already ingested",
        BatchStatus::Rejected => "rejected",
    }
}

fn shorten(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(width - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

/// The tables named on the command line (`layer.name`), or every table.
fn tables(store: &Store, named: &[String]) -> anyhow::Result<Vec<(Layer, String)>> {
    if named.is_empty() {
        return Ok(store.tables());
    }
    named
        .iter()
        .map(|t| {
            let (layer, name) = t
                .split_once('.')
                .with_context(|| format!("`{t}`: name a table as layer.name, e.g. staging.order_line"))?;
            let layer = Layer::ALL
                .into_iter()
                .find(|l| l.name() == layer)
                .with_context(|| format!("`{t}`: unknown layer `{layer}`"))?;
            Ok((layer, name.to_string()))
        })
        .collect()
}

/// `tributary optimize`.
pub async fn optimize(config: &Config, args: MaintainArgs) -> anyhow::Result<()> {
    let store = config.store();
    for (layer, name) in tables(&store, &args.tables)? {
        let done = store.optimize(layer, &name).await?;
        println!(
            "{layer}.{name}: {} files compacted into {}",
            done.files_removed, done.files_added
        );
    }
    Ok(())
}

/// `tributary vacuum`.
pub async fn vacuum(config: &Config, args: MaintainArgs) -> anyhow::Result<()> {
    let store = config.store();
    for (layer, name) in tables(&store, &args.tables)? {
        let deleted = store.vacuum(layer, &name, args.retain_hours).await?;
        println!("{layer}.{name}: {deleted} unreferenced files deleted");
    }
    Ok(())
}
