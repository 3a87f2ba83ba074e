//! The one typed configuration: built-in defaults, a TOML file, environment overrides, flags.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tributary_ingest::pipeline::Pipeline;
use tributary_ingest::run::Pipelines;
use tributary_ingest::sample_company::SampleOptions;
use tributary_models::churn::ChurnOptions;
use tributary_models::demand::DemandOptions;
use tributary_models::jobs::LifetimeOptions;
use tributary_warehouse::engine::{QueryError, Warehouse};
use tributary_warehouse::layout::DataDir;
use tributary_warehouse::limits::QueryLimits;
use tributary_warehouse::refresh::MartParams;
use tributary_warehouse::store::{StorageOptions, Store};

/// The built-in configuration, which documents every key.
pub const DEFAULT_TOML: &str = include_str!("../tributary.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TRIBUTARY_";

/// Everything configurable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of everything Tributary stores.
    pub data_dir: PathBuf,
    /// HTTP server.
    pub http: Listen,
    /// PostgreSQL wire-protocol server.
    pub pg: PgListen,
    /// Users who may sign in to either server; none means local, unauthenticated access only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<crate::serve::auth::UserConfig>,
    /// Retries of failed jobs.
    #[serde(default)]
    pub jobs: crate::jobs::JobSettings,
    /// Query limits for every caller.
    pub limits: QueryLimits,
    /// How tables are written.
    #[serde(default)]
    pub storage: StorageOptions,
    /// The sample company built by `demo`.
    pub sample: SampleOptions,
    /// Ingest settings.
    pub ingest: IngestSettings,
    /// Choices behind the 7P marts.
    #[serde(default)]
    pub marts: MartParams,
    /// Churn model training.
    #[serde(default)]
    pub churn: ChurnOptions,
    /// Lifetime-value models.
    #[serde(default)]
    pub lifetime: LifetimeOptions,
    /// Weekly demand forecasts.
    #[serde(default)]
    pub demand: DemandOptions,
    /// Monthly sales forecasts.
    #[serde(default)]
    pub sales_forecast: SalesForecastOptions,
    /// Pipelines declared here; they run after the built-in sample company pipelines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<Pipeline>,
    /// Extra sources to ingest from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Scheduled jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
}

/// `[sales_forecast]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesForecastOptions {
    /// Months ahead.
    pub months: usize,
    /// Last day of data; by default the last order date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<chrono::NaiveDate>,
}

impl Default for SalesForecastOptions {
    fn default() -> Self {
        Self { months: 6, as_of: None }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Use the built-in mappings of the sample company's exports.
    pub sample_pipelines: bool,
    /// Seconds between scans of the landing directory with `ingest --watch`.
    pub watch_interval_secs: u64,
}

/// A listening address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// `host:port`.
    pub addr: std::net::SocketAddr,
}

/// `[pg]`: the PostgreSQL wire-protocol endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgListen {
    /// `host:port`.
    pub addr: std::net::SocketAddr,
    /// PEM certificate chain; with `tls_key`, clients may ask for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Where data comes from besides the landing directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Name used by pipelines and in lineage columns.
    pub name: String,
    /// What kind of source it is.
    pub kind: SourceKind,
    /// Connection URL for databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Folder for file sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// Kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A folder of files.
    Files,
    /// A PostgreSQL database.
    Postgres,
    /// A MariaDB or MySQL database.
    Mysql,
    /// Pushed over HTTP.
    Http,
}

/// A job and when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Job name.
    pub job: String,
    /// Cron expression with seconds: `sec min hour day-of-month month day-of-week`.
    pub cron: String,
}

/// A configuration that cannot be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or a value of the wrong type.
    #[error("invalid configuration in {origin}: {message}")]
    Invalid {
        /// The file, or "the environment".
        origin: String,
        /// The parser's message, with line and column for files.
        message: String,
    },
    /// A source is missing what its kind needs.
    #[error("source {name:?} ({kind:?}) needs `{needs}`")]
    Source {
        /// Source name.
        name: String,
        /// Its kind.
        kind: SourceKind,
        /// The missing key.
        needs: &'static str,
    },
}

impl Config {
    /// Load defaults, then `file` (if any), then overrides from `env` (name, value pairs).
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = parse_table(DEFAULT_TOML, "the built-in configuration")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overlay = parse_table(&text, &path.display().to_string())?;
            merge(&mut table, overlay);
        }
        let from_env = apply_env(&mut table, env)?;
        // Name the layer that set a key (or a section), so the user knows where to fix it.
        let origin_of = |key: &str| {
            let set_by_env = from_env.iter().find(|(path, _)| {
                key == path || key.starts_with(&format!("{path}.")) || path.starts_with(&format!("{key}."))
            });
            match set_by_env {
                Some((_, var)) => format!("environment variable {var}"),
                None => file.map_or_else(|| "the built-in configuration".to_string(), |p| p.display().to_string()),
            }
        };
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                origin: origin_of(&key),
                message: format!("`{key}`: {}", e.inner().message()),
            }
        })?;
        if let Err(limit) = config.limits.validate() {
            let origin = origin_of(&format!("limits.{}", limit.field));
            return Err(ConfigError::Invalid {
                origin,
                message: limit.to_string(),
            });
        }
        if let Err(sample) = config.sample.validate() {
            return Err(ConfigError::Invalid {
                origin: origin_of("sample"),
                message: sample.to_string(),
            });
        }
        config.validate_sources()?;
        crate::serve::auth::Users::new(&config.users).map_err(|message| ConfigError::Invalid {
            origin: origin_of("users"),
            message,
        })?;
        for schedule in &config.schedules {
            crate::jobs::Scheduled::new(&schedule.job, &schedule.cron).map_err(|message| ConfigError::Invalid {
                origin: origin_of("schedules"),
                message,
            })?;
        }
        if config.pg.tls_cert.is_some() != config.pg.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                origin: origin_of("pg"),
                message: "pg.tls_cert and pg.tls_key go together".into(),
            });
        }
        config.pipelines().map_err(|e| ConfigError::Invalid {
            origin: origin_of("pipelines"),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// The tables of the data directory, written as `[storage]` says.
    pub fn store(&self) -> Store {
        Store::new(DataDir::new(&self.data_dir)).with_options(self.storage)
    }

    /// The warehouse of the data directory, with the configured limits and storage.
    pub fn warehouse(&self) -> Result<Warehouse, QueryError> {
        Ok(Warehouse::new(DataDir::new(&self.data_dir), self.limits.clone())?.with_storage(self.storage))
    }

    /// The pipelines in force: the built-in ones (unless turned off), then the configured ones.
    pub fn pipelines(&self) -> Result<Pipelines, tributary_ingest::pipeline::PipelineError> {
        let mut all = if self.ingest.sample_pipelines {
            Pipelines::sample_company()
        } else {
            Vec::new()
        };
        all.extend(self.pipelines.iter().cloned());
        Pipelines::new(all)
    }

    fn validate_sources(&self) -> Result<(), ConfigError> {
        for source in &self.sources {
            let needs = match source.kind {
                SourceKind::Postgres | SourceKind::Mysql if source.url.is_none() => Some("url"),
                SourceKind::Files if source.path.is_none() => Some("path"),
                _ => None,
            };
            if let Some(needs) = needs {
                return Err(ConfigError::Source {
                    name: source.name.clone(),
                    kind: source.kind,
                    needs,
                });
            }
        }
        Ok(())
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration always serialises")
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    toml::Table::from_str(text).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Overlay `top` onto `base`, table by table; anything else in `top` replaces what `base` had.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `TRIBUTARY_LIMITS__MEMORY_MB=4096` sets `limits.memory_mb`. Variables whose first key is not a
/// configuration key (such as `TRIBUTARY_LOG`) belong to something else and are left alone.
/// Returns the dotted key paths it set, with the variable that set each.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if !table.contains_key(&path[0]) {
            // TRIBUTARY_CONFIG, TRIBUTARY_LOG and the planner's switches are read elsewhere;
            // anything else is likely a typo (TRIBUTARY_LIMIT__MEMORY_MB) that would otherwise
            // change nothing without a word.
            let planner = tributary_warehouse::planner_options::PlannerOptions::variables();
            if !matches!(name.as_str(), "TRIBUTARY_CONFIG" | "TRIBUTARY_LOG")
                && !planner.iter().any(|(_, v)| *v == name)
            {
                tracing::warn!(
                    "ignoring environment variable {name}: `{}` is not a configuration key",
                    path[0]
                );
            }
            continue;
        }
        let value = toml::Table::from_str(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw.clone()));
        let mut node = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin: format!("environment variable {name}"),
                        message: format!("`{key}` is not a section"),
                    });
                }
            };
        }
        node.insert(path[path.len() - 1].clone(), value);
        applied.push((path.join("."), name));
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn built_in_defaults_load() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./tributary-data"));
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.pg.addr.port(), 5433);
        assert_eq!(config.limits, QueryLimits::default());
        assert_eq!(config.sample, SampleOptions::default());
        assert_eq!(config.storage, StorageOptions::default());
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "data_dir = \"/srv/t\"\n[limits]\nmemory_mb = 512\n[[sources]]\nname = \"erp\"\nkind = \"postgres\"\nurl = \"postgres://x\"\n").unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("TRIBUTARY_LIMITS__MEMORY_MB", "4096"),
                ("TRIBUTARY_HTTP__ADDR", "127.0.0.1:9000"),
                ("TRIBUTARY_STORAGE__PARQUET_COMPRESSION", "snappy"),
                ("TRIBUTARY_LOG", "debug"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/t"));
        assert_eq!(config.limits.memory_mb, 4096);
        assert_eq!(
            config.limits.query_timeout_secs, 60,
            "untouched keys keep their defaults"
        );
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.sources[0].kind, SourceKind::Postgres);
        assert_eq!(
            config.store().options().parquet_compression,
            tributary_warehouse::store::ParquetCompression::Snappy
        );
    }

    #[test]
    fn mistakes_name_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[limits]\nmemory_mb = \"lots\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("memory_mb"), "{err}");

        std::fs::write(&file, "[limits\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");

        let err = Config::load(None, env(&[("TRIBUTARY_LIMITS__MEMORY_MB", "0")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid configuration in environment variable TRIBUTARY_LIMITS__MEMORY_MB: limits.memory_mb must be at least 1"
        );

        std::fs::write(&file, "[sample]\nyears = 0\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("sample.years"), "{err}");

        let err = Config::load(None, env(&[("TRIBUTARY_STORAGE__PARQUET_COMPRESSION", "lzo")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TRIBUTARY_STORAGE__PARQUET_COMPRESSION")
                && err.contains("`storage.parquet_compression`")
                && err.contains("lz4_raw"),
            "{err}"
        );

        let err = Config::load(None, env(&[("TRIBUTARY_HTTP__ADDR", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TRIBUTARY_HTTP__ADDR") && err.contains("`http.addr`") && err.contains("socket address"),
            "{err}"
        );

        std::fs::write(&file, "[[pipelines]]\nname = \"orders\"\nfiles = \"*.csv\"\n[[pipelines.targets]]\nentity = \"sales_order\"\ncolumns.order_id = \"no\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("`customer_id` is required"),
            "{err}"
        );

        std::fs::write(&file, "[[sources]]\nname = \"drop\"\nkind = \"files\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("\"drop\"") && err.contains("path"), "{err}");
    }
}
