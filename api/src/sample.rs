//! `generate` and `demo`: the sample company from the command line.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tributary_ingest::sample_company::{self, Manifest, SampleOptions};
use tributary_warehouse::layout::DataDir;

use crate::cli::{DemoArgs, GenerateArgs, SampleArgs};
use crate::config::Config;

fn options(config: &Config, args: SampleArgs) -> SampleOptions {
    let defaults = &config.sample;
    SampleOptions {
        customers: args.customers.unwrap_or(defaults.customers),
        seed: args.seed.unwrap_or(defaults.seed),
        years: args.years.unwrap_or(defaults.years),
        end_date: args.end_date.unwrap_or_else(|| defaults.end_date.clone()),
    }
}

/// Generate with a progress bar on stderr (drawn only on a terminal).
fn generate_with_progress(options: &SampleOptions, out: &Path) -> anyhow::Result<(Manifest, Duration)> {
    let bar = ProgressBar::new(options.customers);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:30} {pos}/{len} customers  {msg}  [{elapsed_precise}, {eta} left]",
        )
        .expect("the template is valid"),
    );
    let started = Instant::now();
    let manifest = sample_company::generate(options, out, |p| {
        bar.set_position(p.customers_done);
        let rate = p.order_lines as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} order lines ({}/s)",
            thousands(p.order_lines),
            thousands(rate as u64)
        ));
    })
    .with_context(|| format!("generating the sample company into {}", out.display()))?;
    bar.finish_and_clear();
    Ok((manifest, started.elapsed()))
}

/// `tributary generate`.
pub fn generate(config: &Config, args: GenerateArgs) -> anyhow::Result<()> {
    let out = args.out.unwrap_or_else(|| DataDir::new(&config.data_dir).landing());
    let options = options(config, args.sample);
    let (manifest, took) = generate_with_progress(&options, &out)?;
    print_summary(&manifest, &out, took);
    if let Some(url) = &args.erp_db {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let loaded = runtime.block_on(sample_company::erp_db::load_postgres(&out, url))?;
        println!("Loaded the ERP into PostgreSQL:");
        for (table, rows) in loaded {
            println!("  {table:<36} {:>12} rows", thousands(rows));
        }
        println!("Pull from it with a source named `sample_erp_db` in the configuration (see `tributary config`).");
    }
    Ok(())
}

/// `tributary demo`.
pub async fn demo(config: &Config, args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::new(&config.data_dir);
    let landing = data_dir.landing();
    let options = options(config, args.sample);
    println!(
        "Tributary demo: building a sample company in {}",
        absolute(data_dir.root())
    );
    let (manifest, took) = generate_with_progress(&options, &landing)?;
    print_summary(&manifest, &landing, took);
    println!();
    println!(
        "Ingesting into Delta tables under {}",
        absolute(&data_dir.root().join("tables"))
    );
    let store = tributary_warehouse::store::Store::new(data_dir.clone());
    let pipelines = config.pipelines()?;
    let run = crate::ingest::ingest_once(config, &store, &pipelines, None).await?;
    crate::ingest::print_report(&run, crate::cli::OutputFormat::Table)?;
    crate::refresh::refresh_core(config, crate::cli::OutputFormat::Table).await?;
    println!();
    println!("Training and forecasting:");
    crate::models::run_model_jobs(config).await?;
    println!();
    println!("Next:");
    println!(
        "  - open the exports in {} (CRM under crm/, ERP under erp/;",
        absolute(&landing)
    );
    println!("    _truth/ holds what really happened, for checking matching and churn models)");
    println!(
        "  - {} lists every file with its row count",
        absolute(&landing.join("manifest.json"))
    );
    let root = absolute(data_dir.root());
    println!(
        "  - query the tables: tributary --data-dir {root} sql \"SELECT rfm_segment, count(*), sum(revenue) FROM marts.customer_rfm GROUP BY 1\""
    );
    println!("    (schemas raw, staging, core, marts, system; rejected rows are in system.quarantine)");
    // The best customer, so the profile hint works as printed.
    let warehouse = tributary_warehouse::engine::Warehouse::new(data_dir.clone(), config.limits.clone())?;
    let best = warehouse
        .sql("SELECT CAST(customer_key AS VARCHAR) FROM marts.customer_7p ORDER BY net_sales DESC NULLS LAST LIMIT 1")
        .await?;
    if let Some(batch) = best.batches.first().filter(|b| b.num_rows() > 0) {
        let key = datafusion::arrow::util::display::array_value_to_string(batch.column(0), 0)?;
        println!("  - one customer's 7P profile (the best one): tributary --data-dir {root} profile {key}");
    }
    println!(
        "  - measures by dimensions: tributary --data-dir {root} metrics revenue,gross_margin_rate,active_customers,churn_rate --by date,region --grain quarter"
    );
    println!(
        "  - the top churn risks and why: tributary --data-dir {root} sql \"SELECT customer_key, churn_score, reason_1, reason_2, reason_3 FROM ml.churn_score ORDER BY risk_rank LIMIT 10\""
    );
    println!(
        "  - models and their test figures: tributary --data-dir {root} models list; forecasts in ml.sales_forecast and ml.demand_forecast"
    );
    println!("  - `tributary generate --help` makes other companies: --customers, --years, --seed");
    Ok(())
}

fn print_summary(manifest: &Manifest, out: &Path, took: Duration) {
    let o = &manifest.options;
    println!(
        "Generated a sample company: {} customers, {} year{} ({} to {}), seed {}, in {:.1} s",
        thousands(o.customers),
        o.years,
        if o.years == 1 { "" } else { "s" },
        manifest.start_date,
        o.end_date,
        o.seed,
        took.as_secs_f64()
    );
    println!("Wrote {} files to {}:", manifest.files.len(), absolute(out));
    for file in &manifest.files {
        println!("  {:<36} {:>12} rows", file.path, thousands(file.rows));
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
