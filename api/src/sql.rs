//! `tributary sql`: one query (or an interactive prompt) through `Warehouse::sql`, the function the
//! servers call too, printed as a table, CSV or JSON.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use datafusion::arrow::record_batch::RecordBatch;
use tributary_warehouse::engine::{QueryResult, Warehouse};

use crate::cli::{SqlArgs, SqlFormat};
use crate::config::Config;

/// `tributary sql`.
pub async fn sql(config: &Config, args: SqlArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    match &args.query {
        Some(query) => {
            let result = warehouse.sql(query).await?;
            print(&result, args.format)
        }
        None => prompt(&warehouse, args.format).await,
    }
}

/// Read statements ending in `;` until end of input or `\q`; errors are printed, not fatal.
async fn prompt(warehouse: &Warehouse, format: SqlFormat) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Tributary SQL on {}. End statements with ;  \\q quits.",
            warehouse.store().dir().root().display()
        );
    }
    let mut statement = String::new();
    let stdin = std::io::stdin();
    loop {
        if interactive {
            eprint!(
                "{}",
                if statement.is_empty() {
                    "tributary> "
                } else {
                    "       ..> "
                }
            );
            std::io::stderr().flush().ok();
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        if statement.is_empty() && line.trim() == "\\q" {
            break;
        }
        statement.push_str(&line);
        if line.trim_end().ends_with(';') {
            let query = std::mem::take(&mut statement);
            match warehouse.sql(query.trim().trim_end_matches(';')).await {
                Ok(result) => {
                    print(&result, format)?;
                    if interactive {
                        eprintln!("({} rows, {:.3} s)", result.rows, result.elapsed.as_secs_f64());
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            }
        }
    }
    Ok(())
}

pub fn print(result: &QueryResult, format: SqlFormat) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let batches: Vec<RecordBatch> = if result.batches.is_empty() {
        vec![RecordBatch::new_empty(result.schema.clone())]
    } else {
        result.batches.clone()
    };
    match format {
        SqlFormat::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?;
            writeln!(out, "{table}")?;
        }
        SqlFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in &batches {
                writer.write(batch).context("writing CSV")?;
            }
        }
        SqlFormat::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).context("writing JSON")?;
            writer.finish().context("writing JSON")?;
            writeln!(out)?;
        }
    }
    Ok(())
}
