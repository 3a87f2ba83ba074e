//! `tributary`: the one binary. A thin front end: it reads the configuration, then calls the
//! warehouse, ingest and models crates, which do the work.

mod cli;
mod config;
mod ingest;
mod jobs;
mod metrics;
mod models;
mod profile;
mod refresh;
mod sample;
mod serve;
mod sql;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("TRIBUTARY_CONFIG").map(Into::into));
    let mut config = Config::load(config_file.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    tracing::debug!(data_dir = %config.data_dir.display(), "configuration loaded");
    match cli.command {
        Command::Generate(args) => sample::generate(&config, args),
        Command::Demo(args) => runtime()?.block_on(sample::demo(&config, args)),
        Command::Ingest(args) => runtime()?.block_on(ingest::ingest(&config, args)),
        Command::Refresh(args) => runtime()?.block_on(refresh::refresh(&config, args.format)),
        Command::Profile(args) => runtime()?.block_on(profile::profile(&config, args)),
        Command::Metrics(args) => runtime()?.block_on(metrics::metrics(&config, args)),
        Command::Train(args) => runtime()?.block_on(models::train(&config, args)),
        Command::Score(args) => runtime()?.block_on(models::score(&config, args)),
        Command::Forecast(args) => runtime()?.block_on(models::forecast(&config, args)),
        Command::Models(args) => runtime()?.block_on(models::models(&config, args)),
        Command::Sql(args) => runtime()?.block_on(sql::sql(&config, args)),
        Command::Optimize(args) => runtime()?.block_on(ingest::optimize(&config, args)),
        Command::Vacuum(args) => runtime()?.block_on(ingest::vacuum(&config, args)),
        Command::Serve(args) => runtime()?.block_on(serve::serve(config, args)),
        Command::Jobs(args) => runtime()?.block_on(jobs_command(config, args)),
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "give the password on standard input");
            println!("{}", serve::auth::hash_password(password));
            Ok(())
        }
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
    }
}

/// `tributary jobs list|run`.
async fn jobs_command(config: Config, args: cli::JobsArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let runner = jobs::JobRunner::new(std::sync::Arc::new(config), warehouse);
    match args.action {
        cli::JobsAction::List { format } => {
            let list = runner.list().await;
            match format {
                cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                cli::OutputFormat::Table => {
                    println!(
                        "{:<16} {:<10} {:<22} {:<28} last run",
                        "job", "running", "schedules", "next run"
                    );
                    for job in list {
                        let last = job.last_run.as_ref().map_or("-".to_string(), |run| {
                            let field = |k: &str| run.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
                            format!("{} at {}", field("status"), field("started_at"))
                        });
                        println!(
                            "{:<16} {:<10} {:<22} {:<28} {last}",
                            job.name,
                            if job.running { "yes" } else { "no" },
                            if job.schedules.is_empty() {
                                "-".to_string()
                            } else {
                                job.schedules.join("; ")
                            },
                            job.next_run.map_or("-".to_string(), |t| t.to_rfc3339()),
                        );
                    }
                }
            }
            Ok(())
        }
        cli::JobsAction::Run { name, format } => {
            let outcome = runner.run(&name, true).await?;
            match format {
                cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
                cli::OutputFormat::Table => {
                    println!(
                        "{}: {} ({} rows in {})",
                        outcome.job, outcome.status, outcome.rows, outcome.table
                    );
                    println!("{}", models::summary(&outcome.report));
                }
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Logs go to stderr so that stdout stays clean for results; `TRIBUTARY_LOG` takes a tracing
/// filter (`debug`, `tributary_ingest=trace`, ...) and wins over -v and -q.
fn init_logging(verbose: u8, quiet: bool) {
    // Our crates at the chosen level; libraries (Delta, DataFusion) only when they warn, since
    // their info lines describe every snapshot they build.
    let default = match (quiet, verbose) {
        (true, _) => "warn".to_string(),
        (false, 0) => {
            "warn,tributary=info,tributary_ingest=info,tributary_warehouse=info,tributary_models=info".to_string()
        }
        (false, 1) => {
            "info,tributary=debug,tributary_ingest=debug,tributary_warehouse=debug,tributary_models=debug".to_string()
        }
        (false, _) => {
            "debug,tributary=trace,tributary_ingest=trace,tributary_warehouse=trace,tributary_models=trace".to_string()
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
