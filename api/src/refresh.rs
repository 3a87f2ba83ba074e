//! `tributary refresh` (and the end of every ingest): customer identity, the `core` facts and the
//! 7P marts, through `tributary_warehouse::refresh`, with a line per table that changed.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tributary_warehouse::refresh::RefreshReport;

use crate::cli::OutputFormat;
use crate::config::Config;

/// Bring `core` and `marts` up to date with staging; a line per rebuilt table for people, nothing
/// printed otherwise (the caller prints the returned report).
pub async fn refresh_core(config: &Config, format: OutputFormat) -> anyhow::Result<RefreshReport> {
    let warehouse = config.warehouse()?;
    let spinner = ProgressBar::new_spinner();
    if format == OutputFormat::Table {
        spinner.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
        spinner.set_message("refreshing core tables and 7P marts");
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    let report = tributary_warehouse::refresh::refresh(&warehouse, &config.marts).await;
    spinner.finish_and_clear();
    let report = report.context("refreshing core and marts")?;
    match format {
        OutputFormat::Json => {}
        OutputFormat::Table => {
            if let Some(done) = report.customers.as_ref().filter(|d| d.records > 0) {
                println!(
                    "core.customer: {} customers from {} CRM and ERP records ({} known to both, {} matches kept as evidence)",
                    done.customers, done.records, done.in_both, done.matches
                );
            }
            let rebuilt: Vec<_> = report.tables.iter().filter(|t| t.rebuilt).collect();
            if rebuilt.is_empty() {
                println!("core and marts: up to date (as of {})", report.as_of);
            } else {
                println!("refreshed as of {}:", report.as_of);
                for table in rebuilt {
                    println!("  {:<32} {:>10} rows {:>8.1} s", table.table, table.rows, table.seconds);
                }
            }
        }
    }
    Ok(report)
}

/// `tributary refresh`.
pub async fn refresh(config: &Config, format: OutputFormat) -> anyhow::Result<()> {
    let report = refresh_core(config, format).await?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
