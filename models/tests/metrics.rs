//! Metric code pinned on values worked out by hand (and matching scikit-learn's documented
//! examples where they exist).

use tributary_models::metrics::{brier, coverage, mase, pr_auc, roc_auc, smape, top_decile_lift};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn roc_auc_counts_pairs_and_halves_ties() {
    // scikit-learn's roc_auc_score example: 3 of the 4 positive-negative pairs are ordered.
    close(
        roc_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap(),
        0.75,
    );
    close(roc_auc(&[false, true], &[0.5, 0.5]).unwrap(), 0.5);
    close(roc_auc(&[true, false, true], &[0.9, 0.1, 0.2]).unwrap(), 1.0);
    assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
}

#[test]
fn average_precision_weights_precision_by_recall_gained() {
    // scikit-learn's average_precision_score example: (1/2)(1) + (1/2)(2/3) = 0.8333...
    close(
        pr_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap(),
        5.0 / 6.0,
    );
    // Tied scores enter together: both rows at 0.5, one positive: precision 1/2 for all recall.
    close(pr_auc(&[true, false], &[0.5, 0.5]).unwrap(), 0.5);
}

#[test]
fn brier_and_lift() {
    // scikit-learn's brier_score_loss example.
    close(brier(&[false, true, true, false], &[0.1, 0.9, 0.8, 0.3]), 0.0375);
    // 20 rows, 4 positives; the two top-scored rows are positive: (2/2) / (4/20) = 5.
    let labels: Vec<bool> = (0..20).map(|i| i < 4).collect();
    let scores: Vec<f64> = (0..20).map(|i| 1.0 - i as f64 / 20.0).collect();
    close(top_decile_lift(&labels, &scores).unwrap(), 5.0);
}

#[test]
fn mase_scales_by_the_in_sample_seasonal_naive_error() {
    // Naive (season 1) in-sample errors are all 1; forecast errors 1 and 2: MASE 1.5.
    close(
        mase(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0], &[5.0, 5.0], 1).unwrap(),
        1.5,
    );
    // Season 2: in-sample seasonal differences 0, 0, 0, 1 (scale 0.25); error 1: MASE 4.
    close(mase(&[1.0, 2.0, 1.0, 2.0, 1.0, 3.0], &[2.0], &[1.0], 2).unwrap(), 4.0);
    assert_eq!(
        mase(&[3.0, 3.0, 3.0], &[3.0], &[3.0], 1),
        None,
        "a constant history has no scale"
    );
}

#[test]
fn smape_and_coverage() {
    close(smape(&[100.0], &[110.0]), 200.0 * 10.0 / 210.0);
    close(smape(&[0.0, 100.0], &[0.0, 100.0]), 0.0);
    close(
        coverage(&[1.0, 2.0, 3.0, 4.0], &[0.0, 2.0, 3.5, 0.0], &[1.0, 3.0, 4.0, 3.0]),
        0.5,
    );
}
