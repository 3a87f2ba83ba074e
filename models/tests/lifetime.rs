//! BG/NBD and Gamma-Gamma on the CDNOW sample give the published parameters (Fader, Hardie and
//! Lee 2005, reproduced by the lifetimes library): see tests/data/cdnow/SOURCE.txt.

use std::path::Path;

use tributary_models::lifetime::{BgNbd, GammaGamma, Summary};

/// Rows of a CDNOW summary file as (frequency, recency, T, monetary).
fn cdnow(file: &str) -> Vec<Summary> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cdnow")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let v: Vec<f64> = line.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
            Summary {
                frequency: v[0],
                recency: v[1],
                age: v[2],
                monetary: v.get(3).copied().unwrap_or(0.0),
            }
        })
        .collect()
}

/// Equal to three significant figures.
fn three_figures(name: &str, got: f64, published: f64) {
    let magnitude = 10f64.powf(published.abs().log10().floor() - 2.0);
    assert!(
        (got / magnitude).round() == (published / magnitude).round(),
        "{name}: fitted {got}, published {published}"
    );
}

#[test]
fn bg_nbd_on_cdnow_gives_the_published_parameters() {
    let customers = cdnow("cdnow_customers_summary.csv");
    assert_eq!(customers.len(), 2357);
    let fit = BgNbd::fit(&customers).unwrap();
    println!("BG/NBD on CDNOW: {fit:?}");
    three_figures("r", fit.r, 0.243);
    three_figures("alpha", fit.alpha, 4.414);
    three_figures("a", fit.a, 0.793);
    three_figures("b", fit.b, 2.426);
    assert!(
        (fit.log_likelihood - -9582.4).abs() < 0.1,
        "log-likelihood {}",
        fit.log_likelihood
    );

    // A customer with no repeat purchase is alive for sure; one who bought often and long ago
    // is probably gone; expected purchases grow with the horizon.
    let new = Summary {
        frequency: 0.0,
        recency: 0.0,
        age: 38.86,
        monetary: 0.0,
    };
    assert_eq!(fit.p_alive(&new), 1.0);
    let lapsed = Summary {
        frequency: 10.0,
        recency: 5.0,
        age: 38.86,
        monetary: 0.0,
    };
    let loyal = Summary {
        frequency: 10.0,
        recency: 38.0,
        age: 38.86,
        monetary: 0.0,
    };
    assert!(fit.p_alive(&lapsed) < 0.01 && fit.p_alive(&loyal) > 0.9);
    assert!(fit.expected_purchases(&loyal, 39.0) > fit.expected_purchases(&loyal, 10.0));
    // The sample's 2,357 customers made 1,788 repeat purchases in the 39 weeks after
    // calibration (the paper's figure 3); the model's forecast of them lands close.
    let total: f64 = customers.iter().map(|c| fit.expected_purchases(c, 39.0)).sum();
    println!("expected repeat purchases in the 39 weeks after calibration: {total:.0} (actual 1,788)");
    assert!(
        (1600.0..2000.0).contains(&total),
        "expected repeat purchases in 39 weeks: {total}"
    );
}

#[test]
fn gamma_gamma_on_cdnow_gives_the_published_parameters() {
    let customers = cdnow("cdnow_customers_summary_with_transactions.csv");
    let repeaters: Vec<&Summary> = customers.iter().filter(|c| c.frequency > 0.0).collect();
    assert_eq!(repeaters.len(), 946);
    let fit = GammaGamma::fit(&customers).unwrap();
    println!("Gamma-Gamma on CDNOW: {fit:?}");
    three_figures("p", fit.p, 6.25);
    three_figures("q", fit.q, 3.74);
    three_figures("v", fit.v, 15.45);
    // lifetimes' quickstart: mean conditional expected spend over all 2,357 customers 35.2530
    // (those without a repeat purchase get the population mean, p v / (q - 1)).
    let mean: f64 = customers.iter().map(|c| fit.expected_spend(c)).sum::<f64>() / customers.len() as f64;
    assert!((mean - 35.2530).abs() < 0.01, "mean expected spend {mean}");
}
