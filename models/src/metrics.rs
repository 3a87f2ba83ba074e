//! Evaluation metrics, defined as the established libraries define them (scikit-learn for the
//! classifier scores, Hyndman's forecasting texts and the M4 competition for forecast accuracy),
//! so that our figures can be set beside theirs.

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann-Whitney statistic, as `roc_auc_score`). `None` when
/// one class is absent.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' ranks, tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += average_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Area under the precision-recall curve as average precision (`average_precision_score`): the
/// precision at each distinct score threshold, weighted by the recall it adds.
pub fn pr_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut true_pos, mut seen, mut previous_recall, mut area) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // All rows at one score enter together: a threshold cannot split a tie.
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            true_pos += usize::from(labels[order[j]]);
            seen += 1;
            j += 1;
        }
        let recall = true_pos as f64 / positives as f64;
        area += (recall - previous_recall) * (true_pos as f64 / seen as f64);
        previous_recall = recall;
        i = j;
    }
    Some(area)
}

/// Mean squared difference between the predicted probability and the outcome.
pub fn brier(labels: &[bool], probabilities: &[f64]) -> f64 {
    let n = labels.len().max(1) as f64;
    labels
        .iter()
        .zip(probabilities)
        .map(|(&l, &p)| (p - f64::from(u8::from(l))).powi(2))
        .sum::<f64>()
        / n
}

/// The positive rate among the highest-scored tenth (rounded up), over the overall positive rate:
/// how much better than random a campaign aimed at the top decile does.
pub fn top_decile_lift(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || labels.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let top = labels.len().div_ceil(10);
    let top_positives = order[..top].iter().filter(|&&k| labels[k]).count();
    Some((top_positives as f64 / top as f64) / (positives as f64 / labels.len() as f64))
}

/// Mean absolute scaled error: the forecast's mean absolute error over the in-sample mean absolute
/// error of the seasonal naive forecast with period `season` (1 for the plain naive forecast).
/// `None` when the history is too short or the series is constant at that lag.
pub fn mase(history: &[f64], actual: &[f64], forecast: &[f64], season: usize) -> Option<f64> {
    let season = season.max(1);
    if history.len() <= season || actual.is_empty() {
        return None;
    }
    let scale = history
        .windows(season + 1)
        .map(|w| (w[season] - w[0]).abs())
        .sum::<f64>()
        / (history.len() - season) as f64;
    if scale == 0.0 {
        return None;
    }
    Some(mean_absolute_error(actual, forecast) / scale)
}

/// Mean absolute error.
pub fn mean_absolute_error(actual: &[f64], forecast: &[f64]) -> f64 {
    actual.iter().zip(forecast).map(|(a, f)| (a - f).abs()).sum::<f64>() / actual.len().max(1) as f64
}

/// Symmetric mean absolute percentage error in percent, as the M4 competition defines it
/// (200 |y - f| / (|y| + |f|)); a point where both are zero counts as no error.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let terms = actual.iter().zip(forecast).map(|(a, f)| {
        let denominator = a.abs() + f.abs();
        if denominator == 0.0 {
            0.0
        } else {
            200.0 * (a - f).abs() / denominator
        }
    });
    terms.sum::<f64>() / actual.len().max(1) as f64
}

/// Share of actual values that fall inside their interval (bounds included).
pub fn coverage(actual: &[f64], lower: &[f64], upper: &[f64]) -> f64 {
    let inside = actual
        .iter()
        .zip(lower.iter().zip(upper))
        .filter(|(a, (lo, hi))| *lo <= *a && *a <= *hi)
        .count();
    inside as f64 / actual.len().max(1) as f64
}
