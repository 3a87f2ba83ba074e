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
    /// Train a model: churn (on the warehouse, or on any --sql table) or lifetime value.
    Train(TrainArgs),
    /// Score today's customers with the stored churn model into ml.churn_score.
    Score(ScoreArgs),
    /// Forecast sales or demand into ml tables, or any series from a query (--sql).
    Forecast(ForecastArgs),
    /// Stored model versions with their headline figures.
    Models(ModelsArgs),
    /// Run SQL against the data directory's tables (a prompt when no query is given).
    Sql(SqlArgs),
    /// Compact small files of tables (all, or those named as layer.name).
    Optimize(MaintainArgs),
    /// Delete data files that old table versions no longer need.
    Vacuum(MaintainArgs),
    /// Serve the HTTP API and dashboards and the PostgreSQL endpoint, and run scheduled jobs.
    Serve(ServeArgs),
    /// List the jobs, or run one now.
    Jobs(JobsArgs),
    /// Make a password_hash for a [[users]] entry (reads the password from stdin).
    HashPassword,
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
    /// Stop after building, instead of serving it.
    #[arg(long)]
    pub no_serve: bool,
    /// Where to serve; as for `serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `tributary serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTP address [default: http.addr, 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// PostgreSQL wire-protocol address [default: pg.addr, 127.0.0.1:5433]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub pg: Option<std::net::SocketAddr>,
}

/// `tributary jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: JobsAction,
}

/// `tributary jobs` actions.
#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Every job with its schedules and latest run.
    List {
        /// Output: a table for people, or JSON.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Run one job now (even if it already ran today), with the configured retries.
    Run {
        /// refresh, churn, lifetime, sales_forecast or demand_forecast.
        name: String,
        /// Output: a table for people, or JSON.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
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
    /// The customer: a customer_key (`key:17` for the key alone), a CRM account id, an ERP customer
    /// number, an email or a name.
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
    /// Order by this measure, largest first.
    #[arg(long, value_name = "MEASURE")]
    pub order_by: Option<String>,
    /// Print at most this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
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

/// `tributary train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which model.
    #[command(subcommand)]
    pub what: TrainWhat,
}

/// Models `tributary train` knows.
#[derive(Debug, Subcommand)]
pub enum TrainWhat {
    /// Churn: logistic regression, a random forest and gradient-boosted trees, chosen on validation,
    /// judged on test.
    Churn(ChurnTrainArgs),
    /// Lifetime value: BG/NBD and Gamma-Gamma by maximum likelihood, into ml.customer_lifetime.
    Lifetime(LifetimeArgs),
}

/// `tributary train churn`.
#[derive(Debug, Args)]
pub struct ChurnTrainArgs {
    /// Train on this query instead of the warehouse: one row per customer, feature columns and a
    /// label column (text is one-hot encoded, missing values filled and flagged).
    #[arg(long, value_name = "QUERY")]
    pub sql: Option<String>,
    /// The yes/no column to learn (with --sql).
    #[arg(long, value_name = "COLUMN")]
    pub label: Option<String>,
    /// A key column to leave out of the features (with --sql).
    #[arg(long, value_name = "COLUMN")]
    pub key: Option<String>,
    /// Judge on this query's rows instead of every fifth row of --sql.
    #[arg(long, value_name = "QUERY")]
    pub test_sql: Option<String>,
    /// Also write each split's feature rows (train, validation, test) as Parquet into DIR, for
    /// checking against other libraries on the very same rows (on the warehouse).
    #[arg(long, value_name = "DIR")]
    pub export_features: Option<PathBuf>,
    /// Days without an order that count as churn (on the warehouse) [default: churn.horizon_days].
    #[arg(long)]
    pub horizon_days: Option<u32>,
    /// Output: a report for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tributary train lifetime`.
#[derive(Debug, Args)]
pub struct LifetimeArgs {
    /// Time unit: day, week or month [default: lifetime.unit].
    #[arg(long)]
    pub unit: Option<String>,
    /// Calibration cut-off, YYYY-MM-DD [default: the last order date].
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
    /// Output: a report for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tributary score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// What to score (churn).
    #[arg(value_enum)]
    pub what: ScoreWhat,
    /// Model version [default: the latest].
    #[arg(long)]
    pub model_version: Option<u64>,
    /// Output: a line for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Scorable models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreWhat {
    /// The churn model.
    Churn,
}

/// `tributary forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// sales (monthly revenue by region, channel and category) or demand (weekly, per product).
    #[arg(value_enum)]
    pub target: Option<ForecastTarget>,
    /// Forecast this query's series instead: rows of --date, --value and optionally --series.
    #[arg(long, value_name = "QUERY")]
    pub sql: Option<String>,
    /// Date column (with --sql).
    #[arg(long, value_name = "COLUMN")]
    pub date: Option<String>,
    /// Value column (with --sql).
    #[arg(long, value_name = "COLUMN")]
    pub value: Option<String>,
    /// Series name column, for many series at once (with --sql).
    #[arg(long, value_name = "COLUMN")]
    pub series: Option<String>,
    /// Periods ahead [default for sales and demand: the configuration's].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Season length in periods [default: from the frequency: 7 daily, 52 weekly, 12 monthly, 4 quarterly].
    #[arg(long)]
    pub season: Option<usize>,
    /// demand: also write the backtested weekly series as CSV (product_key,week,units) to FILE.
    #[arg(long, value_name = "FILE")]
    pub export_series: Option<PathBuf>,
    /// Hold out the last H periods and report MASE, sMAPE and interval coverage on them.
    #[arg(long)]
    pub holdout: Option<usize>,
    /// Output: a report for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Built-in forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForecastTarget {
    /// Monthly revenue into ml.sales_forecast.
    Sales,
    /// Weekly units per product into ml.demand_forecast.
    Demand,
}

/// `tributary models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// What to do (list).
    #[arg(value_enum, default_value_t = ModelsAction::List)]
    pub action: ModelsAction,
    /// Output: a table for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `tributary models` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelsAction {
    /// Every stored model version.
    List,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its definitions (unique names, valid defaults) only when asked.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
