//! Jobs: the mart refresh and the model jobs, run by hand (`tributary jobs run`,
//! `POST /api/v1/jobs/{name}/run`) or on cron schedules by the server.
//!
//! The rules, the same however a job is started: one run of a job at a time (a second trigger
//! while it runs is refused, so two triggers at once give one run); a failed run is retried with
//! a doubling back-off; every run is recorded in `system.job_run`; a scheduled run that fell due
//! while the server was down runs once when it starts. Scheduled runs are idempotent per run
//! date (the model jobs skip a date they already wrote); runs started by hand always run.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tributary_models::jobs::{self, JobOutcome};
use tributary_warehouse::engine::Warehouse;

use crate::config::Config;

/// The jobs there are, in the order a full run takes them.
pub const JOBS: [(&str, &str); 5] = [
    ("refresh", "bring core tables and 7P marts up to date with staging"),
    ("churn", "train the churn model and score customers into ml.churn_score"),
    ("lifetime", "fit BG/NBD and Gamma-Gamma into ml.customer_lifetime"),
    ("sales_forecast", "forecast monthly sales into ml.sales_forecast"),
    (
        "demand_forecast",
        "forecast weekly demand per product into ml.demand_forecast",
    ),
];

/// `[jobs]`: how failed runs are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Further attempts after a failed run.
    pub retries: u32,
    /// Seconds before the first retry; each later one waits twice as long.
    pub retry_backoff_secs: f64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            retries: 2,
            retry_backoff_secs: 30.0,
        }
    }
}

/// Why a job gave no outcome.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job of that name.
    #[error("no job {0:?}; the jobs are {list}", list = JOBS.map(|j| j.0).join(", "))]
    Unknown(String),
    /// It is running now.
    #[error("job {0} is already running; this trigger was not started")]
    AlreadyRunning(String),
    /// Every attempt failed.
    #[error("job {job} failed after {attempts} attempt(s): {message}")]
    Failed {
        /// The job.
        job: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        message: String,
    },
}

/// A job's cron schedule, parsed.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// The job.
    pub job: String,
    /// The expression as written.
    pub cron: String,
    schedule: cron::Schedule,
}

impl Scheduled {
    /// Parse `cron` for `job`, naming both in the error.
    pub fn new(job: &str, cron: &str) -> Result<Self, String> {
        if !JOBS.iter().any(|(name, _)| *name == job) {
            return Err(JobError::Unknown(job.to_string()).to_string());
        }
        let schedule = cron::Schedule::from_str(cron).map_err(|e| {
            format!(
                "schedule of job {job}: cannot read cron {cron:?} (sec min hour day-of-month month day-of-week): {e}"
            )
        })?;
        Ok(Self {
            job: job.to_string(),
            cron: cron.to_string(),
            schedule,
        })
    }

    /// The next time after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }
}

/// Runs jobs by the rules above. Cheap to clone.
#[derive(Clone)]
pub struct JobRunner {
    config: Arc<Config>,
    warehouse: Warehouse,
    running: Arc<Mutex<HashSet<String>>>,
}

/// Removes a job from the running set however its run ends.
struct RunningGuard {
    running: Arc<Mutex<HashSet<String>>>,
    job: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running.lock().expect("never poisoned").remove(&self.job);
    }
}

/// A job as listed by `jobs list` and `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its cron schedules.
    pub schedules: Vec<String>,
    /// Running now.
    pub running: bool,
    /// The latest recorded run, if any.
    pub last_run: Option<serde_json::Value>,
    /// Next scheduled time.
    pub next_run: Option<DateTime<Utc>>,
}

impl JobRunner {
    /// A runner over `warehouse` with the jobs' options from `config`.
    pub fn new(config: Arc<Config>, warehouse: Warehouse) -> Self {
        Self {
            config,
            warehouse,
            running: Arc::default(),
        }
    }

    /// Run `job` now, retrying failures; `force` runs even if it already ran for today.
    pub async fn run(&self, job: &str, force: bool) -> Result<JobOutcome, JobError> {
        if !JOBS.iter().any(|(name, _)| *name == job) {
            return Err(JobError::Unknown(job.to_string()));
        }
        let _guard = {
            let mut running = self.running.lock().expect("never poisoned");
            if !running.insert(job.to_string()) {
                return Err(JobError::AlreadyRunning(job.to_string()));
            }
            RunningGuard {
                running: self.running.clone(),
                job: job.to_string(),
            }
        };
        let settings = &self.config.jobs;
        let mut backoff = Duration::from_secs_f64(settings.retry_backoff_secs.max(0.0));
        let mut attempt = 1;
        loop {
            let run_date = chrono::Local::now().date_naive();
            match self.run_once(job, run_date, force).await {
                Ok(outcome) => {
                    // The model jobs record what they ran; a run they skipped (already done for
                    // this date) is recorded here, so the history shows every scheduled run.
                    if outcome.status == "skipped"
                        && let Err(e) = jobs::record_run(&self.warehouse, Ok(&outcome), Utc::now()).await
                    {
                        tracing::error!(job, "cannot record the skipped run in system.job_run: {e}");
                    }
                    tracing::info!(job, attempt, status = %outcome.status, "job finished");
                    return Ok(outcome);
                }
                Err(message) if attempt > settings.retries => {
                    tracing::error!(job, attempt, "job failed, no retries left: {message}");
                    return Err(JobError::Failed {
                        job: job.to_string(),
                        attempts: attempt,
                        message,
                    });
                }
                Err(message) => {
                    tracing::warn!(
                        job,
                        attempt,
                        "job failed, retrying in {:.1} s: {message}",
                        backoff.as_secs_f64()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt. The model jobs record their own runs; the refresh is recorded here.
    async fn run_once(&self, job: &str, run_date: NaiveDate, force: bool) -> Result<JobOutcome, String> {
        let config = &self.config;
        let warehouse = &self.warehouse;
        match job {
            "refresh" => {
                let started = Utc::now();
                let result = tributary_warehouse::refresh::refresh(warehouse, &config.marts).await;
                let outcome = result.as_ref().map(|report| {
                    let rebuilt: Vec<&str> = report
                        .tables
                        .iter()
                        .filter(|t| t.rebuilt)
                        .map(|t| t.table.as_str())
                        .collect();
                    JobOutcome {
                        job: job.into(),
                        run_date,
                        status: "succeeded".into(),
                        table: "marts".into(),
                        table_version: None,
                        rows: report.tables.iter().filter(|t| t.rebuilt).map(|t| t.rows).sum(),
                        model_version: None,
                        report: serde_json::json!({"as_of": report.as_of, "rebuilt": rebuilt}),
                    }
                });
                let message = result.as_ref().err().map(|e| e.to_string());
                let recorded = match (&outcome, &message) {
                    (Ok(outcome), _) => jobs::record_run(warehouse, Ok(outcome), started).await,
                    (Err(_), Some(message)) => {
                        jobs::record_run(warehouse, Err((job, run_date, message)), started).await
                    }
                    (Err(_), None) => Ok(()),
                };
                if let Err(e) = recorded {
                    tracing::error!("cannot record the refresh run in system.job_run: {e}");
                }
                outcome.map_err(|e| e.to_string())
            }
            "churn" => jobs::churn(warehouse, &config.churn, run_date, force)
                .await
                .map_err(|e| e.to_string()),
            "lifetime" => jobs::lifetime(warehouse, &config.lifetime, run_date, force)
                .await
                .map_err(|e| e.to_string()),
            "sales_forecast" => jobs::sales_forecast(
                warehouse,
                config.sales_forecast.as_of,
                config.sales_forecast.months,
                run_date,
                force,
            )
            .await
            .map_err(|e| e.to_string()),
            "demand_forecast" => jobs::demand_forecast(warehouse, &config.demand, run_date, force)
                .await
                .map_err(|e| e.to_string()),
            other => Err(JobError::Unknown(other.to_string()).to_string()),
        }
    }

    /// The configured schedules, parsed.
    pub fn schedules(&self) -> Result<Vec<Scheduled>, String> {
        self.config
            .schedules
            .iter()
            .map(|s| Scheduled::new(&s.job, &s.cron))
            .collect()
    }

    /// When each job last started, from `system.job_run`.
    pub async fn last_runs(&self) -> BTreeMap<String, serde_json::Value> {
        let mut last = BTreeMap::new();
        let query = "SELECT job, CAST(started_at AS VARCHAR) AS started_at, CAST(finished_at AS VARCHAR) AS finished_at, \
                     status, output_table, rows, message FROM (SELECT *, row_number() OVER (PARTITION BY job ORDER BY started_at DESC) AS n \
                     FROM system.job_run) WHERE n = 1";
        if !self
            .warehouse
            .store()
            .exists(tributary_warehouse::layout::Layer::System, "job_run")
        {
            return last;
        }
        match self.warehouse.sql(query).await {
            Ok(result) => match tributary_warehouse::engine::json_rows(&result.batches) {
                Ok(rows) => {
                    for row in rows {
                        if let Some(job) = row.get("job").and_then(|j| j.as_str()) {
                            last.insert(job.to_string(), serde_json::Value::Object(row.clone()));
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot read system.job_run: {e}"),
            },
            Err(e) => tracing::warn!("cannot read system.job_run: {e}"),
        }
        last
    }

    /// Every job with its schedules, state and latest run.
    pub async fn list(&self) -> Vec<JobStatus> {
        let schedules = self.schedules().unwrap_or_default();
        let last = self.last_runs().await;
        let running = self.running.lock().expect("never poisoned").clone();
        let now = Utc::now();
        JOBS.iter()
            .map(|(name, description)| {
                let mine: Vec<&Scheduled> = schedules.iter().filter(|s| s.job == *name).collect();
                JobStatus {
                    name: name.to_string(),
                    description: description.to_string(),
                    schedules: mine.iter().map(|s| s.cron.clone()).collect(),
                    running: running.contains(*name),
                    last_run: last.get(*name).cloned(),
                    next_run: mine.iter().filter_map(|s| s.next_after(now)).min(),
                }
            })
            .collect()
    }

    /// Run every schedule until the process ends: a run missed while the server was down first
    /// (once), then each at its times.
    pub async fn start_schedules(&self) -> Result<(), String> {
        let schedules = self.schedules()?;
        if schedules.is_empty() {
            return Ok(());
        }
        let last = self.last_runs().await;
        let now = Utc::now();
        for scheduled in schedules {
            let missed = last
                .get(&scheduled.job)
                .and_then(|run| run.get("started_at")?.as_str().map(str::to_string))
                .and_then(|t| parse_timestamp(&t))
                .and_then(|t| scheduled.next_after(t))
                .is_some_and(|due| due <= now);
            tracing::info!(job = %scheduled.job, cron = %scheduled.cron, missed, "job scheduled");
            let runner = self.clone();
            tokio::spawn(async move {
                if missed {
                    runner.scheduled_run(&scheduled.job).await;
                }
                loop {
                    let Some(next) = scheduled.next_after(Utc::now()) else {
                        return;
                    };
                    let wait = (next - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                    runner.scheduled_run(&scheduled.job).await;
                }
            });
        }
        Ok(())
    }

    async fn scheduled_run(&self, job: &str) {
        match self.run(job, false).await {
            Ok(outcome) => tracing::info!(job, status = %outcome.status, "scheduled run done"),
            Err(JobError::AlreadyRunning(_)) => tracing::info!(job, "scheduled run skipped: the job is still running"),
            Err(e) => tracing::error!(job, "scheduled run failed: {e}"),
        }
    }
}

/// `2026-11-25T10:00:00.123456Z` or `2026-11-25 10:00:00.123456` (as DataFusion prints UTC).
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let text = text.trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_or_say_why() {
        let every_night = Scheduled::new("churn", "0 0 2 * * *").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            every_night.next_after(t).unwrap().to_rfc3339(),
            "2026-11-26T02:00:00+00:00"
        );
        let err = Scheduled::new("churn", "every night").unwrap_err();
        assert!(err.contains("churn") && err.contains("every night"), "{err}");
        let err = Scheduled::new("backup", "0 0 2 * * *").unwrap_err();
        assert!(err.contains("backup") && err.contains("demand_forecast"), "{err}");
        assert!(parse_timestamp("2026-11-25T10:00:00.5Z").is_some());
        assert!(parse_timestamp("2026-11-25 10:00:00").is_some());
    }
}
