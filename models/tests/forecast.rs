//! Forecasting methods on series whose answers are known.

use tributary_models::forecast::{Trend, auto_ets, backtest, ets_forecast, fit_ets, seasonal_naive};

/// A small deterministic generator (SplitMix64) and Box-Muller normals, so the series are the
/// same on every machine.
struct Noise(u64);

impl Noise {
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

#[test]
fn seasonal_naive_repeats_the_last_season() {
    let y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let f = seasonal_naive(&y, 4, 6);
    assert_eq!(f.mean, [5.0, 6.0, 7.0, 8.0, 5.0, 6.0]);
    // Every seasonal difference is 4, so the residual spread is 4 and grows after one season.
    assert!((f.upper_95[0] - f.mean[0] - 1.959_963_984_540 * 4.0).abs() < 1e-9);
    assert!(f.upper_95[4] - f.mean[4] > f.upper_95[0] - f.mean[0]);
}

#[test]
fn ets_continues_a_straight_line_and_a_clean_season() {
    let line: Vec<f64> = (0..40).map(|t| 10.0 + 2.0 * t as f64).collect();
    let model = fit_ets(&line, Trend::Additive, 1).unwrap();
    let f = model.forecast(5);
    for (h, v) in f.mean.iter().enumerate() {
        let expected = 10.0 + 2.0 * (40 + h) as f64;
        assert!((v - expected).abs() < 0.05, "step {}: {v} vs {expected}", h + 1);
    }
    let season = [5.0, -3.0, 0.0, -2.0];
    let seasonal: Vec<f64> = (0..48).map(|t| 100.0 + season[t % 4]).collect();
    let model = auto_ets(&seasonal, 4).unwrap();
    assert_eq!(model.season, 4, "AICc picks the seasonal form: {}", model.name());
    let f = model.forecast(8);
    for (h, v) in f.mean.iter().enumerate() {
        assert!((v - (100.0 + season[(48 + h) % 4])).abs() < 0.05, "step {}: {v}", h + 1);
    }
}

#[test]
fn intervals_of_a_local_level_cover_what_they_promise() {
    // A random walk observed with noise is exactly ETS(A,N,N): its 80% and 95% intervals should
    // hold about 80% and 95% of the actual values over many rolling origins.
    let mut noise = Noise(42);
    let mut level = 100.0;
    let y: Vec<f64> = (0..400)
        .map(|_| {
            level += 0.5 * noise.normal();
            level + noise.normal()
        })
        .collect();
    let result = backtest("auto_ets", &y, 1, 4, 60, |h, k| ets_forecast(h, 1, k));
    println!("local level backtest: {result:?}");
    assert!(
        (result.coverage_80 - 0.80).abs() < 0.05,
        "80% coverage {}",
        result.coverage_80
    );
    assert!(
        (result.coverage_95 - 0.95).abs() < 0.05,
        "95% coverage {}",
        result.coverage_95
    );
    // And it forecasts better than the naive method it is scaled by, or close to it.
    assert!(result.mase.unwrap() < 1.1, "MASE {:?}", result.mase);
}

#[test]
fn backtest_of_a_perfect_method_scores_zero() {
    let y: Vec<f64> = (0..36).map(|t| [3.0, 1.0, 4.0][t % 3]).collect();
    let result = backtest("seasonal_naive", &y, 3, 3, 4, |h, k| seasonal_naive(h, 3, k));
    assert_eq!(result.folds, 4);
    assert_eq!(result.smape, 0.0);
    assert_eq!(result.coverage_95, 1.0);
}
