//! Command-line interface: one subcommand per thing a user does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tributary: an analytics and decision-support warehouse for companies that run a CRM and an ERP.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML); see `tributary config` for every key and its value.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` from the configuration [default: ./tributary-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a sample company's CRM and ERP exports (into the landing directory unless --out).
    Generate(GenerateArgs),
    /// Build the sample company in the data directory and show what to open next.
    Demo(DemoArgs),
    /// Ingest the landing directory (or --from) into Delta tables: raw, staging, quarantine.
    Ingest(IngestArgs),
    /// Bring the core tables and 7P marts up to date with staging (ingest does this at its end).
    Refresh(RefreshArgs),
    /// Print one customer's 7P profile (by customer_key, CRM or ERP id, email or name).
    Profile(ProfileArgs),
    /// Ask the semantic layer: measures by dimensions, answered from rollups where they can be.
    Metrics(MetricsArgs),
    /// Run SQL against the data directory's tables (a prompt when no query is given).
    Sql(SqlArgs),
    /// Compact small files of tables (all, or those named as layer.name).
    Optimize(MaintainArgs),
    /// Delete data files that old table versions no longer need.
    Vacuum(MaintainArgs),
    /// Print the configuration in force (defaults, file, environment and flags combined).
    Config,
}

/// Size and shape of a sample company; unset options come from the `[sample]` configuration.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Number of customers.
    #[arg(long)]
    pub customers: Option<u64>,
    /// Random seed: the same seed and options give the same files, byte for byte.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Years of history.
    #[arg(long)]
    pub years: Option<u32>,
    /// Last day of the history, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub end_date: Option<String>,
}

/// `tributary generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output directory [default: <data-dir>/landing].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also load the ERP tables into this PostgreSQL database (schema `erp`), to pull from.
    #[arg(long, value_name = "URL")]
    pub erp_db: Option<String>,
    /// Size and shape.
    #[command(flatten)]
    pub sample: SampleArgs,
}

/// `tributary demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Size and shape of the sample company.
    #[command(flatten)]
    pub sample: SampleArgs,
}

/// `tributary ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// A folder to scan instead of <data-dir>/landing, or with --table one file.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Land the --from file as a plain table, `raw.NAME`, with no mapping.
    #[arg(long, value_name = "raw.NAME")]
    pub table: Option<String>,
    /// Keep scanning for new files until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// How to print the batch reports.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Output formats for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// `tributary optimize` and `tributary vacuum`.
#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Tables as layer.name (e.g. staging.order_line); all tables when none are named.
    pub tables: Vec<String>,
    /// vacuum: keep files needed by versions of the last this many hours.
    #[arg(long, default_value_t = 168)]
    pub retain_hours: u32,
}

/// `tributary sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; without one, statements are read from standard input (ending in `;`).
    pub query: Option<String>,
    /// How to print results.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
}

/// Result formats of `tributary sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// Aligned table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// `tributary refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Output: a line per rebuilt table, or the whole report as JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tributary profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The customer: a customer_key, a CRM account id, an ERP customer number, an email or a name.
    pub customer: String,
    /// Output: sections of name and value, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tributary metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Measures, comma-separated (revenue, gross_margin, orders, active_customers, churn_rate, ...);
    /// none lists every measure and dimension.
    #[arg(value_delimiter = ',')]
    pub measures: Vec<String>,
    /// Dimensions to group by, comma-separated (date, category, product, channel, region, segment,
    /// campaign).
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// Grain of the date dimension.
    #[arg(long, value_enum, default_value_t = GrainArg::Month)]
    pub grain: GrainArg,
    /// First day included (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day included (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Only rows where a dimension has one of these values: DIMENSION=VALUE[,VALUE...]; repeatable.
    #[arg(long = "where", value_name = "DIMENSION=VALUES")]
    pub filters: Vec<String>,
    /// Print the SQL and the tables it reads (to standard error) too.
    #[arg(long)]
    pub explain: bool,
    /// How to print results.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
}

/// Grains of the date dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrainArg {
    /// Calendar day.
    Day,
    /// ISO week.
    Week,
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}
