//! `tributary train`, `score`, `forecast` and `models list`: thin front ends over
//! `tributary_models`, printing reports for people (tables) or programs (JSON).

use anyhow::Context;
use chrono::NaiveDate;
use tributary_models::churn::{self, ChurnModel, Rows, Window};
use tributary_models::jobs::{self, JobOutcome};
use tributary_models::registry;
use tributary_warehouse::layout::DataDir;

use crate::cli::{
    ChurnTrainArgs, ForecastArgs, ForecastTarget, LifetimeArgs, ModelsArgs, OutputFormat, ScoreArgs, TrainArgs,
    TrainWhat,
};
use crate::config::Config;

/// Today, the run date of jobs started by hand.
fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn figure(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// The model jobs `demo` runs after the refresh: churn, lifetime value, sales and demand
/// forecasts, each with a line of what it found.
pub async fn run_model_jobs(config: &Config) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let run_date = today();
    spinner.set_message("training the churn model");
    let churn = jobs::churn(&warehouse, &config.churn, run_date, true).await;
    spinner.set_message("fitting BG/NBD and Gamma-Gamma");
    let lifetime = jobs::lifetime(&warehouse, &config.lifetime, run_date, true).await;
    spinner.set_message("forecasting sales");
    let sales = jobs::sales_forecast(
        &warehouse,
        config.sales_forecast.as_of,
        config.sales_forecast.months,
        run_date,
        true,
    )
    .await;
    spinner.set_message("forecasting demand per product");
    let demand = jobs::demand_forecast(&warehouse, &config.demand, run_date, true).await;
    spinner.finish_and_clear();
    for (job, outcome) in [
        ("churn", churn),
        ("lifetime", lifetime),
        ("sales_forecast", sales),
        ("demand_forecast", demand),
    ] {
        // A small or short sample company may not support every model (the demand backtest
        // needs 86 weeks of history): say why and go on with the others.
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                println!("{job}: not run: {error}");
                continue;
            }
        };
        println!("{}: {}", outcome.job, summary(&outcome.report));
        println!(
            "  {} rows in {} (model v{})",
            outcome.rows,
            outcome.table,
            outcome.model_version.map_or("-".into(), |v| v.to_string())
        );
    }
    Ok(())
}

/// `tributary train churn|lifetime`.
pub async fn train(config: &Config, args: TrainArgs) -> anyhow::Result<()> {
    match args.what {
        TrainWhat::Churn(args) => train_churn(config, args).await,
        TrainWhat::Lifetime(args) => train_lifetime(config, args).await,
    }
}

async fn train_churn(config: &Config, args: ChurnTrainArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let mut options = config.churn.clone();
    if let Some(days) = args.horizon_days {
        options.horizon_days = days;
    }
    let Some(sql) = &args.sql else {
        if args.label.is_some() || args.test_sql.is_some() || args.key.is_some() {
            anyhow::bail!("--label and --test-sql go with --sql (a query of one row per customer)");
        }
        let outcome =
            jobs::churn_exporting(&warehouse, &options, today(), true, args.export_features.as_deref()).await?;
        return print_outcome(&outcome, args.format);
    };
    if args.export_features.is_some() {
        anyhow::bail!("--export-features is for the warehouse's churn model; with --sql the rows are yours already");
    }
    let label = args
        .label
        .as_deref()
        .context("--sql needs --label COLUMN: the yes/no column to learn")?;
    let key = args.key.as_deref().unwrap_or("");
    let rows = churn::collect(&warehouse, sql).await.context("running --sql")?;
    // Deterministic splits by row position (each customer is one row): every fifth row from the
    // fourth validates, and without --test-sql every fifth from the fifth tests.
    let (train_rows, validation, test, window) = match &args.test_sql {
        Some(test_sql) => {
            let test = churn::collect(&warehouse, test_sql)
                .await
                .context("running --test-sql")?;
            (
                churn::rows_where(&rows, |i| i % 5 != 4)?,
                churn::rows_where(&rows, |i| i % 5 == 4)?,
                test,
                Window {
                    train: vec!["--sql rows except every fifth".into()],
                    validation: "--sql rows 5, 10, 15, ...".into(),
                    test: "--test-sql rows".into(),
                    horizon_days: None,
                },
            )
        }
        None => (
            churn::rows_where(&rows, |i| i % 5 < 3)?,
            churn::rows_where(&rows, |i| i % 5 == 3)?,
            churn::rows_where(&rows, |i| i % 5 == 4)?,
            Window {
                train: vec!["--sql rows 1-3 of every 5".into()],
                validation: "--sql rows 4, 9, 14, ...".into(),
                test: "--sql rows 5, 10, 15, ...".into(),
                horizon_days: None,
            },
        ),
    };
    let splits = churn::Splits {
        train: Rows::new(train_rows, label)?,
        validation: Rows::new(validation, label)?,
        test: Rows::new(test, label)?,
    };
    let model: ChurnModel = churn::train(&splits, key, label, None, window, &options)?;
    let version = registry::save(warehouse.store().dir(), "churn_custom", &model.report, &model)?;
    let outcome = JobOutcome {
        job: "train churn --sql".into(),
        run_date: today(),
        status: "succeeded".into(),
        table: String::new(),
        table_version: None,
        rows: 0,
        model_version: Some(version),
        report: serde_json::to_value(&model.report)?,
    };
    print_outcome(&outcome, args.format)
}

async fn train_lifetime(config: &Config, args: LifetimeArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let mut options = config.lifetime.clone();
    if let Some(unit) = args.unit {
        options.unit = unit;
    }
    if let Some(date) = args.as_of {
        options.as_of = Some(date);
    }
    let outcome = jobs::lifetime(&warehouse, &options, today(), true).await?;
    print_outcome(&outcome, args.format)
}

/// `tributary score churn`: today's customers with a stored model.
pub async fn score(config: &Config, args: ScoreArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    let (entry, model): (registry::Entry, ChurnModel) =
        registry::load(warehouse.store().dir(), "churn", args.model_version)?;
    let as_of = match config.churn.as_of {
        Some(d) => d,
        None => churn::order_span(&warehouse).await?.1,
    };
    let scores = churn::score_on_warehouse(&warehouse, &model, as_of, entry.version).await?;
    let rows = scores.num_rows();
    let mut metadata = serde_json::Map::new();
    metadata.insert("tributary.job".into(), "score churn".into());
    metadata.insert("tributary.model_version".into(), entry.version.into());
    let version = warehouse
        .store()
        .replace(
            tributary_warehouse::layout::Layer::Ml,
            "churn_score",
            vec![scores],
            metadata,
        )
        .await?;
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"table": "ml.churn_score", "table_version": version, "rows": rows,
                               "model_version": entry.version, "as_of": as_of})
        ),
        OutputFormat::Table => println!(
            "ml.churn_score: {rows} customers scored as of {as_of} with churn model v{} (table version {})",
            entry.version,
            version.map_or("-".into(), |v| v.to_string())
        ),
    }
    Ok(())
}

/// `tributary forecast sales|demand` or `tributary forecast --sql ...`.
pub async fn forecast(config: &Config, args: ForecastArgs) -> anyhow::Result<()> {
    let warehouse = config.warehouse()?;
    if let Some(sql) = &args.sql {
        if args.target.is_some() {
            anyhow::bail!("give either sales|demand or --sql, not both");
        }
        let date = args.date.as_deref().context("--sql needs --date COLUMN")?;
        let value = args.value.as_deref().context("--sql needs --value COLUMN")?;
        let horizon = args.horizon.context("--sql needs --horizon H (periods ahead)")?;
        let rows = churn::collect(&warehouse, sql).await.context("running --sql")?;
        let results = tributary_models::series::forecast_query(
            &rows,
            date,
            value,
            args.series.as_deref(),
            horizon,
            args.season,
            args.holdout,
        )?;
        match args.format {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
            OutputFormat::Table => {
                for r in &results {
                    let name = if r.series.is_empty() {
                        "series".to_string()
                    } else {
                        format!("series {}", r.series)
                    };
                    println!(
                        "{name}: {} {:?} values, season {}, method {}",
                        r.observations, r.frequency, r.season, r.method
                    );
                    if let Some(h) = &r.holdout {
                        println!(
                            "  holdout of {}: MASE {} (seasonal naive {}), sMAPE {:.2}%, coverage 80% {:.0}%, 95% {:.0}%{}",
                            h.periods,
                            figure(h.mase),
                            figure(h.baseline_mase),
                            h.smape,
                            100.0 * h.coverage_80,
                            100.0 * h.coverage_95,
                            if h.beats_baseline {
                                ""
                            } else {
                                " (AutoETS did not beat the baseline; the baseline forecasts)"
                            }
                        );
                    }
                    println!(
                        "  {:<12} {:>14} {:>14} {:>14} {:>14} {:>14}",
                        "date", "forecast", "lower_80", "upper_80", "lower_95", "upper_95"
                    );
                    for s in &r.forecast {
                        println!(
                            "  {:<12} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
                            s.date, s.forecast, s.lower_80, s.upper_80, s.lower_95, s.upper_95
                        );
                    }
                }
            }
        }
        return Ok(());
    }
    let outcome = match args.target {
        Some(ForecastTarget::Sales) => {
            let options = &config.sales_forecast;
            jobs::sales_forecast(
                &warehouse,
                options.as_of,
                args.horizon.unwrap_or(options.months),
                today(),
                true,
            )
            .await?
        }
        Some(ForecastTarget::Demand) => {
            let mut options = config.demand.clone();
            if let Some(h) = args.horizon {
                options.horizon_weeks = h;
            }
            jobs::demand_forecast_exporting(&warehouse, &options, today(), true, args.export_series.as_deref()).await?
        }
        None => anyhow::bail!(
            "say what to forecast: `tributary forecast sales`, `forecast demand`, or `forecast --sql ...`"
        ),
    };
    print_outcome(&outcome, args.format)
}

/// `tributary models list`.
pub async fn models(config: &Config, args: ModelsArgs) -> anyhow::Result<()> {
    let entries = registry::list(&DataDir::new(&config.data_dir))?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
        OutputFormat::Table => {
            if entries.is_empty() {
                println!(
                    "no models stored yet: tributary train churn, train lifetime, forecast sales, forecast demand"
                );
            }
            println!("{:<14} {:>7}  {:<22} summary", "kind", "version", "trained_at");
            for e in &entries {
                println!(
                    "{:<14} {:>7}  {:<22} {}",
                    e.kind,
                    e.version,
                    e.trained_at,
                    summary(&e.report)
                );
            }
        }
    }
    Ok(())
}

/// One line about a report: its headline figures.
pub(crate) fn summary(report: &serde_json::Value) -> String {
    let number = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |v| format!("{v:.3}"));
    if let Some(test) = report.get("test") {
        return format!(
            "{} test ROC AUC {} (baseline {}), {}",
            report["chosen"].as_str().unwrap_or("?"),
            number(&test["roc_auc"]),
            number(&report["baseline_test"]["roc_auc"]),
            if report["beats_baseline"].as_bool() == Some(true) {
                "used"
            } else {
                "not used: no better than the baseline"
            }
        );
    }
    if let Some(bg) = report.get("bg_nbd") {
        return format!(
            "BG/NBD r={} alpha={} a={} b={}, Gamma-Gamma p={} q={} v={}",
            number(&bg["r"]),
            number(&bg["alpha"]),
            number(&bg["a"]),
            number(&bg["b"]),
            number(&report["gamma_gamma"]["p"]),
            number(&report["gamma_gamma"]["q"]),
            number(&report["gamma_gamma"]["v"])
        );
    }
    if let Some(backtests) = report.get("backtests").and_then(|b| b.as_array()) {
        let parts: Vec<String> = backtests
            .iter()
            .map(|b| format!("{} MASE {}", b["method"].as_str().unwrap_or("?"), number(&b["mase"])))
            .collect();
        return format!(
            "chose {}; {}",
            report["chosen"].as_str().unwrap_or("?"),
            parts.join(", ")
        );
    }
    String::new()
}

/// Print a job's outcome.
pub fn print_outcome(outcome: &JobOutcome, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
        return Ok(());
    }
    let r = &outcome.report;
    if let Some(candidates) = r.get("candidates").and_then(|c| c.as_array()) {
        println!(
            "churn model candidates on the validation rows ({}):",
            r["window"]["validation"].as_str().unwrap_or("?")
        );
        for c in candidates {
            let v = &c["validation"];
            println!(
                "  {:<20} ROC AUC {}  PR AUC {}  Brier {}  top-decile lift {}",
                c["algorithm"].as_str().unwrap_or("?"),
                figure(v["roc_auc"].as_f64()),
                figure(v["pr_auc"].as_f64()),
                figure(v["brier"].as_f64()),
                figure(v["top_decile_lift"].as_f64())
            );
        }
        println!(
            "  {:<20} ROC AUC {}",
            r["baseline"].as_str().unwrap_or("baseline"),
            figure(r["baseline_validation_auc"].as_f64())
        );
        let t = &r["test"];
        println!(
            "chosen: {}; on the test rows ({}, {} rows, {} churned): ROC AUC {}  PR AUC {}  Brier {}  top-decile lift {}",
            r["chosen"].as_str().unwrap_or("?"),
            r["window"]["test"].as_str().unwrap_or("?"),
            t["rows"],
            t["positives"],
            figure(t["roc_auc"].as_f64()),
            figure(t["pr_auc"].as_f64()),
            figure(t["brier"].as_f64()),
            figure(t["top_decile_lift"].as_f64())
        );
        if r["beats_baseline"].as_bool() != Some(true) {
            println!("the model does not beat its baseline on validation, so it is not used");
        }
    } else if !r.is_null() {
        println!("{}", summary(r));
    }
    match outcome.status.as_str() {
        "skipped" => println!("{}: already ran for {}", outcome.job, outcome.run_date),
        _ if !outcome.table.is_empty() => println!(
            "{}: {} rows written (table version {}), model v{}",
            outcome.table,
            outcome.rows,
            outcome.table_version.map_or("-".into(), |v| v.to_string()),
            outcome.model_version.map_or("-".into(), |v| v.to_string())
        ),
        _ => println!(
            "stored as model v{}",
            outcome.model_version.map_or("-".into(), |v| v.to_string())
        ),
    }
    Ok(())
}
