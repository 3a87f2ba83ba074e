//! The binary classifiers a churn model chooses between, stored as plain parameters: logistic
//! regression (linfa-logistic, on standardised features), a random forest of linfa-trees decision
//! trees (bootstrapped rows, a random subset of features per tree, the probability being the share
//! of trees that vote yes), and gradient-boosted trees on binned features ([`crate::boosting`],
//! ours: linfa has no trees to boost, and its forest is slow and weaker on large tables).

use linfa::Dataset;
use linfa::prelude::{Fit, Predict};
use linfa_logistic::LogisticRegression;
use linfa_trees::{DecisionTree, SplitQuality};
use ndarray::{Array1, Array2, Axis};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::boosting::{self, BoostedTrees, BoostingShape};

/// Why a classifier could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// Both outcomes are needed to learn to tell them apart.
    #[error("the training rows hold only {only} labels; a classifier needs both outcomes")]
    OneClass {
        /// The one label present.
        only: bool,
    },
    /// linfa refused.
    #[error("linfa: {0}")]
    Linfa(String),
}

/// Which kind of classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// L2-regularised logistic regression.
    LogisticRegression,
    /// Bagged decision trees with feature subsets.
    RandomForest,
    /// Gradient-boosted trees on binned features.
    GradientBoosting,
}

impl Algorithm {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::LogisticRegression => "logistic_regression",
            Self::RandomForest => "random_forest",
            Self::GradientBoosting => "gradient_boosting",
        }
    }
}

/// A fitted classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Classifier {
    /// Logistic regression: P(yes) = sigmoid(intercept + sum coef_j (x_j - mean_j) / scale_j).
    LogisticRegression {
        /// Feature means on the training rows.
        mean: Vec<f64>,
        /// Feature standard deviations on the training rows (1 where constant).
        scale: Vec<f64>,
        /// Coefficients on the standardised features, for the `yes` class.
        coefficients: Vec<f64>,
        /// Intercept.
        intercept: f64,
    },
    /// Random forest.
    RandomForest {
        /// The trees.
        trees: Vec<DecisionTree<f64, usize>>,
        /// The feature columns each tree sees.
        features: Vec<Vec<usize>>,
    },
    /// Gradient-boosted trees.
    GradientBoosting(BoostedTrees),
}

fn check_classes(labels: &[bool]) -> Result<(), FitError> {
    match (labels.iter().any(|&l| l), labels.iter().any(|&l| !l)) {
        (true, true) => Ok(()),
        (yes, _) => Err(FitError::OneClass { only: yes }),
    }
}

/// Column means and standard deviations (1 for constant columns, so they standardise to 0).
fn standardiser(x: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let mean = x.mean_axis(Axis(0)).map(|m| m.to_vec()).unwrap_or_default();
    let scale = x
        .std_axis(Axis(0), 0.0)
        .iter()
        .map(|&s| if s > 1e-12 { s } else { 1.0 })
        .collect();
    (mean, scale)
}

fn standardise(x: &Array2<f64>, mean: &[f64], scale: &[f64]) -> Array2<f64> {
    let mut z = x.clone();
    for (j, mut column) in z.axis_iter_mut(Axis(1)).enumerate() {
        column.mapv_inplace(|v| (v - mean[j]) / scale[j]);
    }
    z
}

/// Fit an L2-regularised logistic regression (`l2` as linfa's alpha; scikit-learn's default C=1
/// corresponds to 1).
pub fn fit_logistic(x: &Array2<f64>, labels: &[bool], l2: f64) -> Result<Classifier, FitError> {
    check_classes(labels)?;
    let (mean, scale) = standardiser(x);
    let z = standardise(x, &mean, &scale);
    let dataset = Dataset::new(z, Array1::from(labels.to_vec()));
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(500)
        .gradient_tolerance(1e-6)
        .fit(&dataset)
        .map_err(|e| FitError::Linfa(e.to_string()))?;
    // linfa 0.8 names its positive class after the order labels appear in, not their value: read
    // which one it chose and turn the parameters round when it chose `false`.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Classifier::LogisticRegression {
        mean,
        scale,
        coefficients: fitted.params().iter().map(|c| sign * c).collect(),
        intercept: sign * fitted.intercept(),
    })
}

/// How a forest grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestShape {
    /// Trees.
    pub trees: usize,
    /// Deepest a tree may grow.
    pub max_depth: usize,
    /// Rows drawn (with replacement) for each tree, as a share of the training rows.
    pub row_share: f64,
    /// Features each tree sees, as a share of all (linfa's trees cannot sample per split, so the
    /// forest samples per tree).
    pub feature_share: f64,
    /// Seed of the sampling.
    pub seed: u64,
}

/// Fit a random forest: each tree on a bootstrap sample of the rows and a random subset of the
/// features, with leaves of a minimum size (which keeps the votes smooth enough to rank by).
pub fn fit_forest(x: &Array2<f64>, labels: &[bool], shape: ForestShape) -> Result<Classifier, FitError> {
    check_classes(labels)?;
    let ForestShape {
        trees,
        max_depth,
        row_share,
        feature_share,
        seed,
    } = shape;
    let mut rng = SmallRng::seed_from_u64(seed);
    let (rows, width) = x.dim();
    let sample = ((rows as f64 * row_share).ceil() as usize).max(1);
    let subset = ((width as f64 * feature_share).ceil() as usize).clamp(1, width.max(1));
    let min_leaf = (rows as f64 / 500.0).clamp(5.0, 50.0);
    let targets: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    let mut fitted = Vec::with_capacity(trees);
    let mut features = Vec::with_capacity(trees);
    for _ in 0..trees {
        let picked_rows: Vec<usize> = (0..sample).map(|_| rng.gen_range(0..rows)).collect();
        let mut picked_features: Vec<usize> = (0..width).collect();
        // A partial Fisher-Yates shuffle draws the subset without replacement.
        for i in 0..subset {
            let j = rng.gen_range(i..width);
            picked_features.swap(i, j);
        }
        picked_features.truncate(subset);
        picked_features.sort_unstable();
        let records = x.select(Axis(0), &picked_rows).select(Axis(1), &picked_features);
        let target = Array1::from(picked_rows.iter().map(|&r| targets[r]).collect::<Vec<_>>());
        let tree = DecisionTree::params()
            .split_quality(SplitQuality::Gini)
            .max_depth(Some(max_depth))
            .min_weight_split(2.0 * min_leaf as f32)
            .min_weight_leaf(min_leaf as f32)
            .fit(&Dataset::new(records, target))
            .map_err(|e| FitError::Linfa(e.to_string()))?;
        fitted.push(tree);
        features.push(picked_features);
    }
    Ok(Classifier::RandomForest {
        trees: fitted,
        features,
    })
}

/// Fit gradient-boosted trees (see [`crate::boosting`]).
pub fn fit_boosting(x: &Array2<f64>, labels: &[bool], shape: &BoostingShape) -> Result<Classifier, FitError> {
    check_classes(labels)?;
    Ok(Classifier::GradientBoosting(boosting::fit(x, labels, shape)))
}

impl Classifier {
    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::LogisticRegression { .. } => Algorithm::LogisticRegression,
            Self::RandomForest { .. } => Algorithm::RandomForest,
            Self::GradientBoosting(_) => Algorithm::GradientBoosting,
        }
    }

    /// P(yes) for every row.
    pub fn probabilities(&self, x: &Array2<f64>) -> Vec<f64> {
        match self {
            Self::LogisticRegression {
                mean,
                scale,
                coefficients,
                intercept,
            } => x
                .rows()
                .into_iter()
                .map(|row| {
                    let logit = intercept
                        + row
                            .iter()
                            .enumerate()
                            .map(|(j, v)| coefficients[j] * (v - mean[j]) / scale[j])
                            .sum::<f64>();
                    1.0 / (1.0 + (-logit).exp())
                })
                .collect(),
            Self::RandomForest { trees, features } => {
                let mut votes = vec![0.0; x.nrows()];
                for (tree, picked) in trees.iter().zip(features) {
                    let predicted: Array1<usize> = tree.predict(&x.select(Axis(1), picked));
                    for (vote, p) in votes.iter_mut().zip(predicted.iter()) {
                        *vote += *p as f64;
                    }
                }
                let n = trees.len().max(1) as f64;
                votes.into_iter().map(|v| v / n).collect()
            }
            Self::GradientBoosting(trees) => trees.probabilities(x),
        }
    }

    /// For every row, how much each source column raises its probability: for logistic
    /// regression the column's terms in the logit (relative to an average row); for trees the
    /// fall in probability when the column takes its typical value instead (`typical` holds one
    /// row of typical values, `sources` the source column of each feature).
    pub fn contributions(&self, x: &Array2<f64>, typical: &[f64], sources: &[String]) -> (Vec<String>, Array2<f64>) {
        let mut names: Vec<String> = Vec::new();
        for s in sources {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        let source_of: Vec<usize> = sources
            .iter()
            .map(|s| names.iter().position(|n| n == s).expect("listed above"))
            .collect();
        let mut out = Array2::<f64>::zeros((x.nrows(), names.len()));
        match self {
            Self::LogisticRegression {
                mean,
                scale,
                coefficients,
                ..
            } => {
                for (i, row) in x.rows().into_iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        out[[i, source_of[j]]] += coefficients[j] * (v - mean[j]) / scale[j];
                    }
                }
            }
            Self::RandomForest { .. } | Self::GradientBoosting(_) => {
                let base = self.probabilities(x);
                for (k, _) in names.iter().enumerate() {
                    let mut changed = x.clone();
                    for (j, &s) in source_of.iter().enumerate() {
                        if s == k {
                            changed.column_mut(j).fill(typical[j]);
                        }
                    }
                    for (i, p) in self.probabilities(&changed).into_iter().enumerate() {
                        out[[i, k]] = base[i] - p;
                    }
                }
            }
        }
        (names, out)
    }
}
