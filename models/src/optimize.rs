//! Derivative-free minimisation (Nelder-Mead), for the maximum-likelihood fits of BG/NBD,
//! Gamma-Gamma and exponential smoothing: their likelihoods are cheap, smooth and low-dimensional,
//! which is where the simplex method is at home and a solver dependency would add nothing.

/// Where the search stopped.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// The best point found.
    pub point: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// Objective evaluations used.
    pub evaluations: usize,
}

/// Minimise `f` from `start` with the adaptive Nelder-Mead method (Gao and Han 2012: expansion,
/// contraction and shrink coefficients scaled to the dimension). Stops when the simplex's values
/// agree to `tolerance` or after `max_evaluations`. Non-finite values count as +infinity, so an
/// objective may refuse a point by returning NaN.
pub fn nelder_mead(
    f: impl Fn(&[f64]) -> f64,
    start: &[f64],
    step: f64,
    tolerance: f64,
    max_evaluations: usize,
) -> Minimum {
    let n = start.len();
    let dim = n as f64;
    let (alpha, beta, gamma, delta) = (1.0, 1.0 + 2.0 / dim, 0.75 - 1.0 / (2.0 * dim), 1.0 - 1.0 / dim);
    let evaluations = std::cell::Cell::new(0usize);
    let eval = |x: &[f64]| {
        evaluations.set(evaluations.get() + 1);
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((start.to_vec(), eval(start)));
    for i in 0..n {
        let mut x = start.to_vec();
        x[i] += if x[i] == 0.0 { step } else { step * x[i].abs().max(1.0) };
        let v = eval(&x);
        simplex.push((x, v));
    }
    loop {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        let spread = (worst - best).abs();
        if (spread <= tolerance * (best.abs() + tolerance) && worst.is_finite()) || evaluations.get() >= max_evaluations
        {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / dim)
            .collect();
        let towards = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j]))
                .collect()
        };
        let reflected = towards(-alpha);
        let reflected_value = eval(&reflected);
        if reflected_value < simplex[0].1 {
            let expanded = towards(-alpha * beta);
            let expanded_value = eval(&expanded);
            simplex[n] = if expanded_value < reflected_value {
                (expanded, expanded_value)
            } else {
                (reflected, reflected_value)
            };
        } else if reflected_value < simplex[n - 1].1 {
            simplex[n] = (reflected, reflected_value);
        } else {
            let outside = reflected_value < simplex[n].1;
            let contracted = if outside {
                towards(-alpha * gamma)
            } else {
                towards(gamma)
            };
            let contracted_value = eval(&contracted);
            if contracted_value < reflected_value.min(simplex[n].1) {
                simplex[n] = (contracted, contracted_value);
            } else {
                let best = simplex[0].0.clone();
                for vertex in simplex.iter_mut().skip(1) {
                    for (x, b) in vertex.0.iter_mut().zip(&best) {
                        *x = b + delta * (*x - b);
                    }
                    vertex.1 = eval(&vertex.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (point, value) = simplex.swap_remove(0);
    Minimum {
        point,
        value,
        evaluations: evaluations.get(),
    }
}

/// Minimise from `start`, then restart from the best point until a restart no longer improves it
/// (one simplex can collapse before reaching a narrow valley's floor).
pub fn minimise(
    f: impl Fn(&[f64]) -> f64,
    start: &[f64],
    step: f64,
    tolerance: f64,
    max_evaluations: usize,
) -> Minimum {
    let mut best = nelder_mead(&f, start, step, tolerance, max_evaluations);
    for _ in 0..8 {
        let again = nelder_mead(&f, &best.point, step / 2.0, tolerance, max_evaluations);
        let evaluations = best.evaluations + again.evaluations;
        let improved = again.value < best.value - tolerance * (best.value.abs() + tolerance);
        if again.value <= best.value {
            best = Minimum { evaluations, ..again };
        } else {
            best.evaluations = evaluations;
        }
        if !improved {
            break;
        }
    }
    best
}
