//! `tributary`: the one binary. A thin front end: it reads the configuration, then calls the
//! warehouse, ingest and models crates, which do the work.

mod cli;
mod config;
mod ingest;
mod metrics;
mod models;
mod profile;
mod refresh;
mod sample;
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
        Command::Config => {
            print!("{}", config.to_toml());
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
