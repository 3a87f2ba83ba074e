//! How fast the sample company is generated, in order lines per second.
//!
//! `cargo bench -p tributary-ingest --bench sample_company [-- CUSTOMERS]` (default 20,000
//! customers, the demo's size). The target is at least 1,000,000 order lines a second in release
//! mode on the reference 2-core machine. No peer is named for this benchmark, so it prints the
//! figure alone.

use std::time::Instant;

use tributary_ingest::sample_company::{SampleOptions, generate};

fn main() {
    let customers = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000u64);
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SampleOptions {
        customers,
        ..SampleOptions::default()
    };
    let mut best = f64::MAX;
    let mut lines = 0;
    for run in 1..=3 {
        let started = Instant::now();
        let manifest = generate(&options, dir.path(), |_| {}).expect("generation succeeds");
        let seconds = started.elapsed().as_secs_f64();
        lines = manifest.rows("erp/sales_order_lines.csv").expect("order lines written");
        let bytes: u64 = manifest
            .files
            .iter()
            .map(|f| {
                std::fs::metadata(dir.path().join(&f.path))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum();
        println!(
            "run {run}: {customers} customers, {lines} order lines, {:.1} MB in {seconds:.2} s: {:.0} order lines/s",
            bytes as f64 / 1e6,
            lines as f64 / seconds
        );
        best = best.min(seconds);
    }
    println!(
        "sample_company generate: best {:.0} order lines/s (target 1000000: {})",
        lines as f64 / best,
        if lines as f64 / best >= 1e6 { "met" } else { "MISSED" }
    );
}
