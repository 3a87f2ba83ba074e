//! Training and scoring time for a customer table of 1 million rows, and AutoETS on 10,000 weekly
//! product series, beside scikit-learn and statsforecast on the same files in the same run:
//!
//! ```sh
//! cargo bench -p tributary-models --bench models [-- CUSTOMERS [SERIES [PEER_SERIES]] [--skip-forest]]
//! ```
//!
//! `--skip-forest` leaves out linfa's random forest, which takes about 12 minutes at 1 million rows.
//!
//! The data are synthetic with a known signal (a churn label from a logistic model with an
//! interaction and a threshold, so trees and lines differ; seasonal weekly series with trend and
//! noise), written once under `<target>/tmp/bench-models/`. The peers run from a virtual
//! environment made there from `models/compare/requirements.txt`. statsforecast's AutoETS takes
//! about a third of a second per weekly series, so by default it forecasts the first 1,000 series
//! and the ratio is per series.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tributary_models::boosting::BoostingShape;
use tributary_models::classifier::{Classifier, ForestShape, fit_boosting, fit_forest, fit_logistic};
use tributary_models::design::{Design, labels};
use tributary_models::forecast::ets_forecast;
use tributary_models::metrics::roc_auc;

const SEASON: usize = 52;
const HORIZON: usize = 12;
const WEEKS: usize = 156;

/// SplitMix64 with Box-Muller normals: the same data on every machine.
struct Draws(u64);

impl Draws {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn work_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("tmp/bench-models")
}

/// The customer table: key, two text columns, ten numbers (one with gaps) and the label.
fn customers(rows: usize) -> RecordBatch {
    let mut draw = Draws(2026);
    let segments = ["smb", "mid_market", "enterprise"];
    let regions = ["emea", "amer", "apac", "latam", "nordics"];
    let mut numbers: Vec<Vec<Option<f64>>> = (0..10).map(|_| Vec::with_capacity(rows)).collect();
    let (mut segment, mut region, mut churned) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let x: Vec<f64> = (0..10).map(|_| draw.normal()).collect();
        let s = (draw.uniform() * 3.0) as usize;
        let r = (draw.uniform() * 5.0) as usize;
        let logit = -1.5 + 0.8 * x[0] - 0.6 * x[1]
            + 0.5 * x[2] * x[3]
            + if x[4] > 1.0 { 0.9 } else { 0.0 }
            + [0.3, 0.0, -0.4][s]
            + 0.1 * r as f64;
        churned.push(draw.uniform() < 1.0 / (1.0 + (-logit).exp()));
        for (j, column) in numbers.iter_mut().enumerate() {
            column.push(if j == 2 && draw.uniform() < 0.05 {
                None
            } else {
                Some(x[j])
            });
        }
        segment.push(segments[s]);
        region.push(regions[r]);
    }
    let mut fields = vec![
        Field::new("customer_key", DataType::Int64, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())),
        Arc::new(StringArray::from(segment)),
        Arc::new(StringArray::from(region)),
    ];
    for (j, column) in numbers.into_iter().enumerate() {
        fields.push(Field::new(format!("x{}", j + 1), DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(column)));
    }
    fields.push(Field::new("churned", DataType::Boolean, false));
    columns.push(Arc::new(BooleanArray::from(churned)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns match")
}

/// Weekly series: level, trend, a yearly season and noise, never below zero.
fn series(count: usize) -> Vec<Vec<f64>> {
    let mut draw = Draws(7);
    (0..count)
        .map(|_| {
            let level = 5.0 + 95.0 * draw.uniform();
            let trend = 0.002 * draw.normal() * level;
            let amplitude = 0.3 * draw.uniform() * level;
            let phase = draw.uniform() * 52.0;
            (0..WEEKS)
                .map(|t| {
                    let season = amplitude * (2.0 * std::f64::consts::PI * (t as f64 + phase) / 52.0).sin();
                    (level + trend * t as f64 + season + 0.15 * level * draw.normal())
                        .max(0.0)
                        .round()
                })
                .collect()
        })
        .collect()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create the customer file");
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("a Parquet writer");
    for start in (0..batch.num_rows()).step_by(65_536) {
        writer
            .write(&batch.slice(start, 65_536.min(batch.num_rows() - start)))
            .expect("write rows");
    }
    writer.close().expect("finish the file");
}

/// A Python with the peers installed.
fn python(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv failed");
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/requirements.txt");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(requirements)
            .status();
        assert!(installed.is_ok_and(|s| s.success()), "pip install of the peers failed");
    }
    python
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rows = args.first().copied().unwrap_or(1_000_000);
    let series_count = args.get(1).copied().unwrap_or(10_000);
    let peer_series = args.get(2).copied().unwrap_or(1_000).min(series_count);
    let with_forest = !std::env::args().any(|a| a == "--skip-forest");
    let dir = work_dir();
    std::fs::create_dir_all(&dir).expect("the bench folder");
    let customer_file = dir.join(format!("customers-{rows}.parquet"));
    let series_file = dir.join(format!("series-{series_count}.csv"));
    if !customer_file.exists() {
        write_parquet(&customer_file, &customers(rows));
    }
    let all_series = series(series_count);
    if !series_file.exists() {
        let mut text = String::from("series,week,units\n");
        for (i, s) in all_series.iter().enumerate() {
            for (t, v) in s.iter().enumerate() {
                text.push_str(&format!("{i},{t},{v}\n"));
            }
        }
        std::fs::write(&series_file, text).expect("write the series");
    }

    // Ours: read the file, encode, fit both classifiers, score every row.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let batches = runtime.block_on(async {
        let ctx = SessionContext::new();
        ctx.read_parquet(
            customer_file.to_str().expect("UTF-8 path"),
            ParquetReadOptions::default(),
        )
        .await
        .expect("read the customers")
        .collect()
        .await
        .expect("collect the customers")
    });
    let design = Design::learn(&batches, &["customer_key", "churned"]).expect("encode");
    let x = design.matrix(&batches).expect("a matrix");
    let y = labels(&batches, "churned").expect("labels");
    let read_and_encode = started.elapsed().as_secs_f64();
    let train: Vec<usize> = (0..y.len()).filter(|i| i % 5 < 3).collect();
    let test: Vec<usize> = (0..y.len()).filter(|i| i % 5 == 4).collect();
    let x_train = x.select(ndarray::Axis(0), &train);
    let y_train: Vec<bool> = train.iter().map(|&i| y[i]).collect();
    let y_test: Vec<bool> = test.iter().map(|&i| y[i]).collect();

    let timed = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    // Each classifier: seconds to train, seconds to score every row, ROC AUC on the test rows.
    let judge = |fit: &dyn Fn() -> Classifier| {
        let started = Instant::now();
        let model = fit();
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let p = model.probabilities(&x);
        let score_seconds = started.elapsed().as_secs_f64();
        let auc = roc_auc(&y_test, &test.iter().map(|&i| p[i]).collect::<Vec<_>>()).unwrap_or(0.0);
        (train_seconds, score_seconds, auc)
    };
    let (logistic_train, logistic_score, logistic_auc) =
        judge(&|| fit_logistic(&x_train, &y_train, 1.0).expect("logistic"));
    let (forest_train, forest_score, forest_auc) = if with_forest {
        let shape = ForestShape {
            trees: 100,
            max_depth: 10,
            row_share: 0.5,
            feature_share: 0.6,
            seed: 7,
        };
        judge(&|| fit_forest(&x_train, &y_train, shape).expect("forest"))
    } else {
        (f64::NAN, f64::NAN, f64::NAN)
    };
    let (boosting_train, boosting_score, boosting_auc) =
        judge(&|| fit_boosting(&x_train, &y_train, &BoostingShape::default()).expect("boosting"));

    let ets_all = timed(&mut || {
        for s in &all_series {
            std::hint::black_box(ets_forecast(s, SEASON, HORIZON));
        }
    });

    // The peers, same files.
    let python = python(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/bench_peer.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&customer_file)
        .arg(&series_file)
        .arg(SEASON.to_string())
        .arg(HORIZON.to_string())
        .arg(peer_series.to_string())
        .output()
        .expect("the peer script runs");
    assert!(
        output.status.success(),
        "peer script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON from the peer script");
    let number = |key: &str| peer[key].as_f64().unwrap_or(f64::NAN);

    println!(
        "models bench: {rows} customers ({} training rows, {} features), {series_count} weekly series of {WEEKS} weeks",
        train.len(),
        x.ncols()
    );
    println!("{:<52} {:>12} {:>12} {:>8}", "what", "tributary", "peer", "ratio");
    let line = |what: &str, ours: f64, theirs: f64| {
        println!("{what:<52} {ours:>12.3} {theirs:>12.3} {:>8.2}", ours / theirs);
    };
    line("read and encode the table, s", read_and_encode, number("read_seconds"));
    line(
        "train logistic regression, s (vs scikit-learn)",
        logistic_train,
        number("logistic_train_seconds"),
    );
    line(
        "score every row, logistic, s",
        logistic_score,
        number("logistic_score_seconds"),
    );
    line(
        "train gradient boosting, s (vs HistGradientBoosting)",
        boosting_train,
        number("boosting_train_seconds"),
    );
    line(
        "score every row, boosting, s",
        boosting_score,
        number("boosting_score_seconds"),
    );
    line(
        "train random forest, s (vs HistGradientBoosting)",
        forest_train,
        number("boosting_train_seconds"),
    );
    line(
        "score every row, forest, s",
        forest_score,
        number("boosting_score_seconds"),
    );
    line("test ROC AUC, logistic", logistic_auc, number("logistic_test_auc"));
    line(
        "test ROC AUC, gradient boosting",
        boosting_auc,
        number("boosting_test_auc"),
    );
    line(
        "test ROC AUC, forest vs boosting",
        forest_auc,
        number("boosting_test_auc"),
    );
    let ours_per_series = ets_all / series_count as f64;
    let theirs_per_series = number("autoets_seconds") / number("autoets_series");
    println!(
        "AutoETS (season {SEASON}, horizon {HORIZON}): ours {ets_all:.1} s for {series_count} series; statsforecast {:.1} s for {}",
        number("autoets_seconds"),
        number("autoets_series")
    );
    line(
        "AutoETS, ms per series",
        1000.0 * ours_per_series,
        1000.0 * theirs_per_series,
    );
}
