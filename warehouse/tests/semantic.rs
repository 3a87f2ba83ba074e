//! The semantic layer on the hand-worked company (`tests/marts/company`): the answers, and which
//! table gave them. The figures are the ones worked out in `tests/marts/*.slt`.

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tributary_warehouse::semantic::{Filter, Grain, MetricQuery, query_metrics};

use crate::marts::company;

fn query(measures: &[&str], dimensions: &[&str]) -> MetricQuery {
    MetricQuery {
        measures: measures.iter().map(|s| s.to_string()).collect(),
        dimensions: dimensions.iter().map(|s| s.to_string()).collect(),
        grain: Grain::Month,
        ..MetricQuery::default()
    }
}

/// Rows as `a | b | c` lines, floats to six places.
async fn answer(
    warehouse: &tributary_warehouse::engine::Warehouse,
    query: &MetricQuery,
) -> (Vec<String>, Vec<&'static str>) {
    let answer = query_metrics(warehouse, query).await.unwrap();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &answer.result.batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                if c.data_type() == &DataType::Float64 {
                    cast(c, &DataType::Decimal128(18, 6)).unwrap()
                } else {
                    c.clone()
                }
            })
            .collect();
        let formatters: Vec<_> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
            rows.push(cells.join(" | "));
        }
    }
    (rows, answer.sources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_by_month_come_from_rollups_with_the_hand_worked_figures() {
    let (_dir, warehouse) = company().await;

    let (rows, sources) = answer(
        &warehouse,
        &query(&["revenue", "orders", "average_order_value"], &["date"]),
    )
    .await;
    assert_eq!(sources, vec!["marts.sales_daily", "marts.orders_daily"]);
    assert_eq!(
        rows,
        vec![
            "2024-01-01 | 175.00 | 3 | 58.333333",
            "2024-02-01 | 130.00 | 2 | 65.000000",
            "2024-03-01 | 78.00 | 3 | 26.000000",
            "2024-04-01 | 202.00 | 3 | 67.333333",
        ]
    );

    // Buyers per month: January Alpha and Beta, February Alpha and Gamma, March all three,
    // April Alpha, Gamma and Epsilon. With a 90-day window only January to March can be judged
    // (April's buyers bought less than 90 days before the end), and everyone judged came back.
    let (rows, sources) = answer(&warehouse, &query(&["active_customers", "churn_rate"], &["date"])).await;
    assert_eq!(sources, vec!["marts.active_customers", "marts.churn_monthly"]);
    assert_eq!(
        rows,
        vec![
            "2024-01-01 | 2 | 0.000000",
            "2024-02-01 | 2 | 0.000000",
            "2024-03-01 | 3 | 0.000000",
            "2024-04-01 | 3 | NULL",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_and_distinct_counts_over_a_range_come_from_the_facts() {
    let (_dir, warehouse) = company().await;

    // Four customers bought at all (not 2 + 2 + 3 + 3).
    let (rows, sources) = answer(&warehouse, &query(&["active_customers"], &[])).await;
    assert_eq!((rows, sources), (vec!["4".to_string()], vec!["core.sales_order"]));

    // Tools by product: hammers 20 + 10 + 10 + 20 + 30, drills 20 + 60 + 20 (O7 cancelled).
    let mut tools = query(&["revenue", "units"], &["product"]);
    tools.filters = vec![Filter {
        dimension: "category".into(),
        values: vec!["Tools".into()],
    }];
    let (rows, sources) = answer(&warehouse, &tools).await;
    assert_eq!(sources, vec!["marts.product_sales_monthly"]);
    assert_eq!(rows, vec!["P1 | 90.00 | 9.000", "P2 | 100.00 | 5.000"]);
    // The same from the facts when the range cuts a month, and from the weekly rollup by week.
    tools.from = chrono::NaiveDate::from_ymd_opt(2024, 1, 2);
    let (rows, sources) = answer(&warehouse, &tools).await;
    assert_eq!(sources, vec!["core.order_line"]);
    let mut weekly = tools.clone();
    weekly.from = None;
    weekly.dimensions = vec!["date".into(), "product".into()];
    weekly.grain = Grain::Week;
    let (weeks, sources) = answer(&warehouse, &weekly).await;
    assert_eq!(sources, vec!["marts.product_sales_weekly"]);
    let mut by_facts = weekly.clone();
    by_facts.to = chrono::NaiveDate::from_ymd_opt(2030, 1, 1);
    let (facts, sources) = answer(&warehouse, &by_facts).await;
    assert_eq!(sources, vec!["core.order_line"]);
    assert_eq!(weeks, facts);
    assert!(!rows.is_empty() && weeks.len() > 2, "{rows:?} {weeks:?}");

    // Campaigns: C1 converted one of its two targeted customers, C2 none.
    let (rows, sources) = answer(&warehouse, &query(&["touches", "conversion_rate"], &["campaign"])).await;
    assert_eq!(sources, vec!["marts.campaign_daily"]);
    assert_eq!(rows, vec!["Paint promo | 1 | 0.000000", "Spring Garden | 2 | 0.500000"]);
}
