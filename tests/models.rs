//! Models and forecasts through the CLI, on the sample company (where the truth is known) and on
//! tables an analyst brings: churn is judged on a later time window than it trained on, demand
//! and sales forecasts on rolling-origin backtests, and every job writes its `ml` table.

use std::path::Path;

use serde_json::Value;

use crate::ingest::sql;
use crate::{run, stderr, stdout, texts, tributary};

fn json(output: &std::process::Output) -> Value {
    let text = stdout(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn churn_lifetime_and_forecasts_on_the_sample_company() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    run(
        tributary().args(["--data-dir", &d, "generate", "--customers", "3000", "--years", "3"]),
        true,
    );
    run(tributary().args(["--data-dir", &d, "ingest", "--format", "json"]), true);

    // Churn: every candidate on validation, the chosen one on the later test window.
    let churn = json(&run(
        tributary().args(["--data-dir", &d, "train", "churn", "--format", "json"]),
        true,
    ));
    let report = &churn["report"];
    println!("churn report: {report:#}");
    let test_auc = number(&report["test"]["roc_auc"]);
    assert!(test_auc >= 0.80, "churn ROC AUC on the test window {test_auc}");
    assert_eq!(
        texts(&report["candidates"], "algorithm"),
        ["logistic_regression", "random_forest", "gradient_boosting"]
    );
    assert_eq!(report["beats_baseline"], true, "{report:#}");
    let (validation, test) = (
        report["window"]["validation"].as_str().unwrap(),
        report["window"]["test"].as_str().unwrap(),
    );
    assert!(validation < test, "validation {validation} comes before test {test}");
    for cutoff in report["window"]["train"].as_array().unwrap() {
        assert!(
            cutoff.as_str().unwrap() < validation,
            "training cut-off {cutoff} before validation"
        );
    }
    // Every customer who bought in the last year is scored once, with reasons for the riskiest.
    let scored = sql(
        dir.path(),
        "SELECT COUNT(*), COUNT(DISTINCT customer_key), MIN(churn_score) >= 0 AND MAX(churn_score) <= 1, \
                SUM(CASE WHEN risk_band = 'high' AND reason_1 IS NOT NULL THEN 1 ELSE 0 END) > 0 \
         FROM ml.churn_score",
    );
    assert_eq!(scored[0][0], scored[0][1], "one score per customer");
    assert_eq!(scored[0][2..], ["true", "true"], "{scored:?}");
    let active = sql(
        dir.path(),
        "SELECT COUNT(DISTINCT customer_key) FROM core.sales_order WHERE status <> 'cancelled' \
         AND order_date > (SELECT MAX(order_date) FROM core.sales_order) - INTERVAL '365' DAY",
    );
    assert_eq!(
        scored[0][0], active[0][0],
        "customers scored = customers active in the last year"
    );
    // Scoring again with the stored model writes a new version of the same scores.
    let rescored = json(&run(
        tributary().args(["--data-dir", &d, "score", "churn", "--format", "json"]),
        true,
    ));
    assert_eq!(rescored["rows"].to_string(), scored[0][0]);

    // Lifetime value: fitted parameters and sane per-customer figures.
    let lifetime = json(&run(
        tributary().args(["--data-dir", &d, "train", "lifetime", "--format", "json"]),
        true,
    ));
    for p in ["r", "alpha", "a", "b"] {
        assert!(number(&lifetime["report"]["bg_nbd"][p]) > 0.0, "{lifetime:#}");
    }
    let clv = sql(
        dir.path(),
        "SELECT MIN(p_alive) >= 0 AND MAX(p_alive) <= 1, MIN(clv) >= 0, \
                CORR(clv, monetary_value * frequency) > 0 FROM ml.customer_lifetime",
    );
    assert_eq!(clv[0], ["true", "true", "true"], "{clv:?}");

    // The profile shows the models' view of a customer beside the marts'.
    let riskiest = sql(
        dir.path(),
        "SELECT customer_key FROM ml.churn_score WHERE risk_rank = 1",
    );
    let profile = json(&run(
        tributary().args(["--data-dir", &d, "profile", &riskiest[0][0], "--format", "json"]),
        true,
    ));
    assert!(number(&profile["persistency"]["churn_score"]) > 0.5, "{profile:#}");
    assert_eq!(profile["persistency"]["churn_risk_band"], "high");
    assert!(profile["persistency"]["churn_reason_1"].is_string(), "{profile:#}");
    assert!(number(&profile["persistency"]["p_alive"]) <= 1.0);
    assert!(
        profile["profitability"]["clv"].is_number() && profile["prospecting"]["expected_purchases_90d"].is_number()
    );

    // Sales forecast: reconciled, so every level sums to the total in every month.
    let sales = json(&run(
        tributary().args(["--data-dir", &d, "forecast", "sales", "--format", "json"]),
        true,
    ));
    println!("sales forecast: {:#}", sales["report"]);
    let sums = sql(
        dir.path(),
        "SELECT level, month_start, SUM(forecast) FROM ml.sales_forecast GROUP BY 1, 2 ORDER BY 2, 1",
    );
    let months: std::collections::BTreeSet<&str> = sums.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(months.len(), 6, "six months ahead");
    for month in months {
        let levels: Vec<f64> = sums
            .iter()
            .filter(|r| r[1] == month)
            .map(|r| r[2].parse().unwrap())
            .collect();
        assert_eq!(levels.len(), 5, "total, region, channel, category and their product");
        for v in &levels {
            assert!(
                (v - levels[0]).abs() <= 1e-6 * levels[0].abs().max(1.0),
                "{month}: {levels:?}"
            );
        }
    }
    let ordered = sql(
        dir.path(),
        "SELECT COUNT(*) FROM ml.sales_forecast WHERE NOT (lower_95 <= lower_80 AND lower_80 <= forecast \
         AND forecast <= upper_80 AND upper_80 <= upper_95)",
    );
    assert_eq!(ordered[0][0], "0", "intervals nest around the forecast");

    // Demand: the chosen method beats the seasonal naive baseline, and its intervals hold what
    // they promise within 5 points.
    let demand = json(&run(
        tributary().args(["--data-dir", &d, "forecast", "demand", "--format", "json"]),
        true,
    ));
    let report = &demand["report"];
    println!("demand backtests: {:#}", report["backtests"]);
    let backtests = report["backtests"].as_array().unwrap();
    let method = |name: &str| backtests.iter().find(|b| b["method"] == name).unwrap();
    let chosen = method(report["chosen"].as_str().unwrap());
    let naive = method("seasonal_naive");
    assert!(number(&chosen["mase"]) < number(&naive["mase"]), "{backtests:#?}");
    assert!((number(&chosen["coverage_80"]) - 0.80).abs() <= 0.05, "{chosen:#}");
    assert!((number(&chosen["coverage_95"]) - 0.95).abs() <= 0.05, "{chosen:#}");
    let weeks = sql(
        dir.path(),
        "SELECT COUNT(DISTINCT week_start), MIN(forecast) >= 0 FROM ml.demand_forecast",
    );
    assert_eq!(weeks[0], ["12", "true"]);

    // Every model is stored with its report.
    let models = json(&run(
        tributary().args(["--data-dir", &d, "models", "list", "--format", "json"]),
        true,
    ));
    let kinds = texts(&models, "kind");
    for kind in ["churn", "demand", "lifetime", "sales"] {
        assert!(kinds.contains(&kind), "{kind} stored: {kinds:?}");
    }
    let runs = sql(dir.path(), "SELECT job, status FROM system.job_run ORDER BY started_at");
    assert!(runs.len() >= 4 && runs.iter().all(|r| r[1] == "succeeded"), "{runs:?}");

    // A scheduled job is idempotent per run date: the second run on one date writes nothing.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tributary_models::jobs::sales_forecast;
        use tributary_warehouse::engine::Warehouse;
        use tributary_warehouse::layout::{DataDir, Layer};
        let warehouse = Warehouse::new(DataDir::new(dir.path()), Default::default()).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let before = warehouse.store().version(Layer::Ml, "sales_forecast").await.unwrap();
        let first = sales_forecast(&warehouse, None, 6, date, false).await.unwrap();
        let second = sales_forecast(&warehouse, None, 6, date, false).await.unwrap();
        assert_eq!(first.status, "succeeded");
        assert_eq!(second.status, "skipped");
        let after = warehouse.store().version(Layer::Ml, "sales_forecast").await.unwrap();
        assert_eq!(
            after,
            before.map(|v| v + 1),
            "one new version for the run date, not two"
        );
    });

    // Any series from a query: monthly revenue, judged on a held-out half year.
    let series = json(&run(
        tributary().args([
            "--data-dir",
            &d,
            "forecast",
            "--sql",
            "SELECT CAST(date_trunc('month', order_date) AS DATE) AS month, SUM(net_amount) AS revenue \
             FROM core.order_line WHERE status <> 'cancelled' AND order_date < DATE '2026-09-01' GROUP BY 1",
            "--date",
            "month",
            "--value",
            "revenue",
            "--horizon",
            "3",
            "--holdout",
            "6",
            "--format",
            "json",
        ]),
        true,
    ));
    let only = &series[0];
    assert_eq!(only["frequency"], "monthly");
    assert_eq!(only["season"], 12);
    assert!(
        only["holdout"]["mase"].is_number() && only["holdout"]["smape"].is_number(),
        "{only:#}"
    );
    assert_eq!(
        texts(&only["forecast"], "date"),
        ["2026-09-01", "2026-10-01", "2026-11-01"]
    );
    let bad = run(
        tributary().args([
            "--data-dir",
            &d,
            "forecast",
            "--sql",
            "SELECT 'soon' AS month, 1.0 AS revenue",
            "--date",
            "month",
            "--value",
            "revenue",
            "--horizon",
            "3",
        ]),
        false,
    );
    assert!(
        stderr(&bad).contains("row 1: column month holds \"soon\", which is not a date"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn churn_on_any_customer_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/mlc_churn/mlc_churn.csv");
    run(
        tributary().args([
            "--data-dir",
            &d,
            "ingest",
            "--from",
            file.to_str().unwrap(),
            "--table",
            "raw.mlc_churn",
        ]),
        true,
    );
    let trained = json(&run(
        tributary().args([
            "--data-dir",
            &d,
            "train",
            "churn",
            "--sql",
            "SELECT * FROM raw.mlc_churn",
            "--label",
            "churn",
            "--format",
            "json",
        ]),
        true,
    ));
    let report = &trained["report"];
    println!("mlc_churn: {report:#}");
    assert_eq!(report["test"]["rows"], 1000);
    assert_eq!(report["test"]["positives"], 144, "every fifth row, 14.4% churned");
    assert!(number(&report["test"]["roc_auc"]) > 0.85, "{report:#}");
    assert!(
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f.as_str().unwrap().starts_with('_')),
        "lineage columns are not features"
    );
    // A label that is not yes/no is named with its row.
    let bad = run(
        tributary().args([
            "--data-dir",
            &d,
            "train",
            "churn",
            "--sql",
            "SELECT * FROM raw.mlc_churn",
            "--label",
            "state",
        ]),
        false,
    );
    assert!(
        stderr(&bad).contains("row 1: label column state holds \"KS\""),
        "{}",
        stderr(&bad)
    );
}
