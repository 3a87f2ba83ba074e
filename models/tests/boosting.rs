//! Gradient-boosted trees: they learn an interaction no linear model can, stop early on a
//! held-out tenth, treat missing values consistently, and give the same answers after a round trip
//! through the stored artefact's JSON.

use ndarray::Array2;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tributary_models::boosting::{BoostingShape, fit};
use tributary_models::classifier::{Classifier, fit_boosting, fit_logistic};
use tributary_models::metrics::roc_auc;

/// Two features whose signs agree make `yes` likely (an exclusive-or), plus a noise feature.
fn interaction(rows: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut x = Array2::<f64>::zeros((rows, 3));
    let mut labels = Vec::with_capacity(rows);
    for i in 0..rows {
        let (a, b) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        x[[i, 0]] = a;
        x[[i, 1]] = b;
        x[[i, 2]] = rng.gen_range(0.0..1.0);
        let p: f64 = if a * b > 0.0 { 0.85 } else { 0.15 };
        labels.push(rng.gen_bool(p));
    }
    (x, labels)
}

#[test]
fn boosting_learns_an_interaction_that_a_linear_model_cannot() {
    let (x, y) = interaction(4_000, 1);
    let (x_test, y_test) = interaction(2_000, 2);
    let boosted = fit_boosting(&x, &y, &BoostingShape::default()).expect("fits");
    let logistic = fit_logistic(&x, &y, 1.0).expect("fits");
    let boosted_auc = roc_auc(&y_test, &boosted.probabilities(&x_test)).unwrap();
    let logistic_auc = roc_auc(&y_test, &logistic.probabilities(&x_test)).unwrap();
    // The best possible ranking (two groups, 85% and 15% yes) has AUC 0.85: 0.85^2 of the pairs
    // ordered, half of the 2 x 0.85 x 0.15 tied ones.
    assert!(boosted_auc > 0.82, "boosting AUC {boosted_auc}");
    assert!(logistic_auc < 0.6, "logistic AUC {logistic_auc}");
    for p in boosted.probabilities(&x_test) {
        assert!(p > 0.0 && p < 1.0);
    }
}

#[test]
fn boosting_stops_early_on_a_held_out_tenth_and_repeats_exactly() {
    // Above 10,000 rows a tenth is held out; on pure noise the held-out loss stops improving at
    // once, so far fewer than the allowed rounds are grown.
    let mut rng = SmallRng::seed_from_u64(3);
    let x = Array2::from_shape_fn((12_000, 4), |_| rng.gen_range(0.0..1.0));
    let y: Vec<bool> = (0..12_000).map(|_| rng.gen_bool(0.3)).collect();
    let shape = BoostingShape {
        rounds: 200,
        ..BoostingShape::default()
    };
    let first = fit(&x, &y, &shape);
    assert!(first.trees.len() < 60, "grew {} trees on noise", first.trees.len());
    assert_eq!(first, fit(&x, &y, &shape), "same data and seed, same trees");
    // The base rate is the training rows' log-odds of yes.
    let rate = 1.0 / (1.0 + (-first.base).exp());
    assert!((rate - 0.3).abs() < 0.02, "base rate {rate}");
}

#[test]
fn boosting_learns_from_missing_values_and_survives_a_round_trip() {
    // Every seventh row has the first feature missing and is always `yes`: the trees can only
    // learn that if training (missing values binned last) and prediction (NaN goes right) agree.
    let (mut x, mut y) = interaction(3_000, 4);
    for i in (0..3_000).step_by(7) {
        x[[i, 0]] = f64::NAN;
        y[i] = true;
    }
    let model = fit_boosting(&x, &y, &BoostingShape::default()).expect("fits");
    let before = model.probabilities(&x);
    let missing: Vec<f64> = (0..3_000).step_by(7).map(|i| before[i]).collect();
    let mean = missing.iter().sum::<f64>() / missing.len() as f64;
    assert!(mean > 0.9, "mean P(yes) of rows with a missing value: {mean}");
    let json = serde_json::to_string(&model).expect("serialises");
    let back: Classifier = serde_json::from_str(&json).expect("deserialises");
    // serde_json reads floats back to within a unit in the last place, not always exactly.
    let largest = back
        .probabilities(&x)
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(largest < 1e-12, "probabilities moved by {largest} after the round trip");
}

#[test]
fn boosting_on_a_flag_with_gaps_stores_and_reads_back() {
    // A 0/1 flag with gaps: the best split can send every known value left and only the missing
    // ones right; that threshold must still be stored as a number and read back.
    let mut rng = SmallRng::seed_from_u64(5);
    let rows = 2_000;
    let mut x = Array2::<f64>::zeros((rows, 1));
    let mut y = Vec::with_capacity(rows);
    for i in 0..rows {
        let missing = i % 4 == 0;
        x[[i, 0]] = if missing {
            f64::NAN
        } else {
            f64::from(u8::from(rng.gen_bool(0.5)))
        };
        y.push(if missing { rng.gen_bool(0.9) } else { rng.gen_bool(0.2) });
    }
    let model = fit_boosting(&x, &y, &BoostingShape::default()).expect("fits");
    let json = serde_json::to_string(&model).expect("serialises");
    let back: Classifier = serde_json::from_str(&json).expect("reads back");
    let (before, after) = (model.probabilities(&x), back.probabilities(&x));
    assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 1e-12));
    assert!(before[0] > 0.8 && before[1] < 0.3, "{} {}", before[0], before[1]);
}
