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
    let store = config.store();
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
    let warehouse = config.warehouse()?;
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
    let (demo_config, demo_file) = demo_users(config, &root)?;
    println!();
    println!("Demo users (one per role), also in {}:", demo_file.display());
    for (user, password) in &demo_config.1 {
        println!("  {:<8} password {password}  ({})", user.name, user.role);
    }
    println!(
        "  psql: psql \"postgresql://analyst:<password>@127.0.0.1:{}/tributary\"",
        args.serve.pg.unwrap_or(config.pg.addr).port()
    );
    println!("  again later: tributary --config {} serve", demo_file.display());
    if args.no_serve {
        return Ok(());
    }
    println!();
    Box::pin(crate::serve::serve(demo_config.0, args.serve)).await
}

/// The demo's users, one per role with a fresh random password, written (hashed) to
/// `<data-dir>/demo.toml` so that `tributary --config <that file> serve` signs them in again.
#[allow(clippy::type_complexity)]
fn demo_users(
    config: &Config,
    root: &str,
) -> anyhow::Result<(
    (Config, Vec<(crate::serve::auth::UserConfig, String)>),
    std::path::PathBuf,
)> {
    use rand::Rng;
    use tributary_warehouse::access::Role;
    let mut users = Vec::new();
    for role in [Role::Viewer, Role::Analyst, Role::Admin] {
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        users.push((
            crate::serve::auth::UserConfig {
                name: role.name().to_string(),
                role,
                password_hash: crate::serve::auth::hash_password(&password),
            },
            password,
        ));
    }
    let mut file = format!(
        "# Written by `tributary demo`: the sample company's data directory and its demo users, one per\n\
         # role. Serve it again with: tributary --config <this file> serve\n\
         data_dir = {root:?}\n"
    );
    for (user, _) in &users {
        file.push_str(&format!(
            "\n[[users]]\nname = {:?}\nrole = {:?}\npassword_hash = {:?}\n",
            user.name,
            user.role.name(),
            user.password_hash
        ));
    }
    let path = std::path::Path::new(root).join("demo.toml");
    std::fs::write(&path, file).with_context(|| format!("writing {}", path.display()))?;
    let mut demo = config.clone();
    demo.users = users.iter().map(|(u, _)| u.clone()).collect();
    Ok(((demo, users), path))
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
