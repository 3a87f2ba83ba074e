//! `tributary`: the one binary. A thin front end: it reads the configuration, then calls the
//! warehouse, ingest and models crates, which do the work.

mod cli;
mod config;
mod sample;

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
        Command::Demo(args) => sample::demo(&config, args),
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
    }
}

/// Logs go to stderr so that stdout stays clean for results; `TRIBUTARY_LOG` takes a tracing
/// filter (`debug`, `tributary_ingest=trace`, ...) and wins over -v and -q.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRIBUTARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
