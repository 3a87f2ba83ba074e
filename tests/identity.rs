//! One customer across CRM and ERP: matching quality on the sample company, whose true identities
//! are in `_truth/customer_identity.csv`.

use std::collections::HashMap;

use tributary_warehouse::identity::pair_quality;

use crate::ingest::sql;
use crate::{run, stdout, tributary};

#[test]
fn customer_matching_precision_and_recall_are_at_least_0_99() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let d = data.to_str().unwrap();
    run(
        tributary().args(["--data-dir", d, "generate", "--customers", "3000", "--years", "1"]),
        true,
    );
    let ingested = stdout(&run(tributary().args(["--data-dir", d, "ingest"]), true));
    assert!(ingested.contains("core.customer: "), "{ingested}");

    // The truth: which CRM account and ERP numbers belong to which real customer.
    let truth_file = std::fs::read_to_string(data.join("landing/_truth/customer_identity.csv")).unwrap();
    let mut truth: HashMap<(String, String), u64> = HashMap::new();
    for line in truth_file.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let index: u64 = f[0].parse().unwrap();
        if !f[1].is_empty() {
            truth.insert(("crm".into(), f[1].into()), index);
        }
        if !f[2].is_empty() {
            truth.insert(("erp".into(), f[2].into()), index);
        }
    }
    let resolved = sql(
        data,
        "SELECT source_system, customer_id, customer_key FROM core.customer_source",
    );
    assert_eq!(resolved.len(), truth.len(), "every staged record is resolved once");
    let mut cluster_ids: HashMap<String, usize> = HashMap::new();
    let mut predicted = Vec::new();
    let mut labels = Vec::new();
    for row in &resolved {
        let next = cluster_ids.len();
        predicted.push(*cluster_ids.entry(row[2].clone()).or_insert(next));
        labels.push(truth[&(row[0].clone(), row[1].clone())]);
    }
    let (precision, recall) = pair_quality(&predicted, &labels);
    let customers = sql(
        data,
        "SELECT count(*), sum(CASE WHEN crm_account_id IS NOT NULL AND erp_customer_id IS NOT NULL THEN 1 ELSE 0 END) FROM core.customer",
    );
    println!(
        "customer matching on {} records: precision {precision:.4}, recall {recall:.4}; {} customers, {} in both systems",
        resolved.len(),
        customers[0][0],
        customers[0][1]
    );
    assert!(precision >= 0.99, "precision {precision}");
    assert!(recall >= 0.99, "recall {recall}");
    // The evidence names the rule for every join.
    let rules = sql(data, "SELECT DISTINCT rule FROM core.customer_match ORDER BY rule");
    assert_eq!(rules, [["email"], ["phone"], ["tax_id"]]);
    // Keys are personal data in one normalised form.
    let shapes = sql(
        data,
        "SELECT count(*) FROM core.customer WHERE email <> lower(email) OR phone NOT LIKE '+%' OR tax_id <> upper(tax_id)",
    );
    assert_eq!(shapes[0][0], "0");
}
