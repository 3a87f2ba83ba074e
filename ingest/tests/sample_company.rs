//! The sample company's exports: determinism, counts, referential integrity, identities across CRM
//! and ERP, and the behaviour the models are meant to find.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tributary_ingest::sample_company::{Manifest, SampleOptions, generate};

/// A company generated into a fresh temporary directory, removed when the directory is dropped.
fn generated(options: &SampleOptions) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate(options, dir.path(), |_| {}).unwrap();
    (dir, manifest)
}

/// One company shared by the tests of this module: 3,000 customers over 3 years.
fn company() -> &'static (tempfile::TempDir, Manifest) {
    static COMPANY: OnceLock<(tempfile::TempDir, Manifest)> = OnceLock::new();
    COMPANY.get_or_init(|| {
        generated(&SampleOptions {
            customers: 3_000,
            seed: 11,
            ..SampleOptions::default()
        })
    })
}

fn root() -> PathBuf {
    company().0.path().to_path_buf()
}

/// A small RFC 4180 reader, independent of the generator's writer.
fn parse_delimited(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) if c == delimiter => row.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "file ends with a line break");
    rows
}

/// A table: column name -> index, and the data rows (every row as wide as the header).
struct Table {
    columns: HashMap<String, usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &str) -> Table {
        Self::read_in(&root(), path)
    }

    fn read_in(root: &Path, path: &str) -> Table {
        let full = root.join(path);
        let mut text = String::new();
        if path.ends_with(".gz") {
            flate2::read::GzDecoder::new(fs::File::open(&full).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = fs::read_to_string(&full).unwrap();
        }
        let delimiter = if path == "erp/customers.csv" { ';' } else { ',' };
        let mut rows = parse_delimited(&text, delimiter);
        let header = rows.remove(0);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), header.len(), "{path} row {} has {} fields", i + 2, row.len());
        }
        let columns = header.into_iter().enumerate().map(|(i, h)| (h, i)).collect();
        Table { columns, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.columns[name]
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &str> {
        let c = self.col(name);
        self.rows.iter().map(move |r| r[c].as_str())
    }

    fn set(&self, name: &str) -> HashSet<&str> {
        self.values(name).collect()
    }
}

fn ndjson(path: &str) -> Vec<serde_json::Value> {
    ndjson_in(&root(), path)
}

fn ndjson_in(root: &Path, path: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(root.join(path))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

/// SKU and category of every product.
fn products() -> Vec<(String, String)> {
    catalogue().into_iter().map(|p| (p.sku, p.category)).collect()
}

struct CatalogueEntry {
    sku: String,
    category: String,
    launched: i64,
}

fn catalogue() -> Vec<CatalogueEntry> {
    // Fixed width: the columns of the header line give the offsets.
    let text = fs::read_to_string(root().join("erp/products.txt")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let at = |name: &str| header.find(name).unwrap();
    let (category_at, subcategory_at, launched_at) = (at("CATEGORY"), at("SUBCATEGORY"), at("LAUNCHED"));
    lines
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            let field = |from: usize, to: usize| {
                chars[from..to.min(chars.len())]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            };
            let launched = field(launched_at, chars.len());
            CatalogueEntry {
                sku: field(0, 10),
                category: field(category_at, subcategory_at),
                launched: day(&format!("{}-{}-{}", &launched[..4], &launched[4..6], &launched[6..8])),
            }
        })
        .collect()
}

fn day(date: &str) -> i64 {
    // Days since 1970-01-01, for YYYY-MM-DD (and the date part of timestamps).
    let (y, m, d): (i64, i64, i64) = (
        date[..4].parse().unwrap(),
        date[5..7].parse().unwrap(),
        date[8..10].parse().unwrap(),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let options = SampleOptions {
        customers: 400,
        seed: 5,
        years: 2,
        ..SampleOptions::default()
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let manifest_a = generate(&options, a.path(), |_| {}).unwrap();
    let manifest_b = generate(&options, b.path(), |_| {}).unwrap();
    generate(
        &SampleOptions {
            seed: 6,
            ..options.clone()
        },
        c.path(),
        |_| {},
    )
    .unwrap();
    assert_eq!(manifest_a, manifest_b);
    assert_eq!(
        manifest_a.files.len(),
        19,
        "19 exports; the manifest lists all but itself"
    );
    for file in &manifest_a.files {
        let bytes_a = fs::read(a.path().join(&file.path)).unwrap();
        assert!(!bytes_a.is_empty(), "{} is empty", file.path);
        assert_eq!(
            bytes_a,
            fs::read(b.path().join(&file.path)).unwrap(),
            "{} differs between runs",
            file.path
        );
    }
    assert_eq!(
        fs::read(a.path().join("manifest.json")).unwrap(),
        fs::read(b.path().join("manifest.json")).unwrap()
    );
    assert_ne!(
        fs::read(a.path().join("erp/sales_order_lines.csv")).unwrap(),
        fs::read(c.path().join("erp/sales_order_lines.csv")).unwrap(),
        "another seed gives another company"
    );
    let leftovers: Vec<_> = walk(a.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

/// FNV-1a over every exported file, path and bytes, in manifest order. Gzip files count by their
/// content: the compressed bytes depend on which deflate backend the build links (adding
/// DataFusion switched flate2 to zlib-rs), which is not the generator's output.
fn fingerprint(root: &Path, manifest: &Manifest) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for path in manifest.files.iter().map(|f| f.path.as_str()).chain(["manifest.json"]) {
        let mut bytes = fs::read(root.join(path)).unwrap();
        if path.ends_with(".gz") {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
            bytes = plain;
        }
        for byte in path.bytes().chain(bytes) {
            hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Two runs in one process agree with each other by construction; this pins the bytes across
/// builds, toolchains and machines. If a change to the generator is meant to change its output,
/// update the constant in the same commit and say so.
#[test]
fn output_is_pinned_across_builds() {
    let (dir, manifest) = generated(&SampleOptions {
        customers: 300,
        seed: 1,
        years: 1,
        ..SampleOptions::default()
    });
    let fingerprint = fingerprint(dir.path(), &manifest);
    assert_eq!(
        fingerprint, PINNED_FINGERPRINT,
        "sample company output changed: {fingerprint:#018x}"
    );
}

const PINNED_FINGERPRINT: u64 = 0xdd6f_148b_622e_57e6;

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn invalid_options_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    for (options, expected) in [
        (
            SampleOptions {
                customers: 0,
                ..SampleOptions::default()
            },
            "--customers",
        ),
        (
            SampleOptions {
                years: 0,
                ..SampleOptions::default()
            },
            "--years",
        ),
        (
            SampleOptions {
                end_date: "2026-02-30".into(),
                ..SampleOptions::default()
            },
            "2026-02-30",
        ),
    ] {
        let err = generate(&options, &out, |_| {}).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    assert!(!out.exists(), "nothing is written for invalid options");
}

#[test]
fn manifest_counts_match_the_files() {
    let (dir, manifest) = company();
    let expected: HashSet<&str> = [
        "crm/accounts.csv",
        "crm/contacts.csv",
        "crm/activities.ndjson",
        "crm/support_tickets.csv",
        "crm/campaigns.csv",
        "crm/campaign_members.csv",
        "crm/leads.csv",
        "crm/opportunities.csv",
        "erp/customers.csv",
        "erp/products.txt",
        "erp/price_lists.csv",
        "erp/sales_orders.csv",
        "erp/sales_order_lines.csv",
        "erp/invoices.csv",
        "erp/payments.csv",
        "erp/returns.csv",
        "erp/inventory_snapshots.csv.gz",
        "_truth/customer_identity.csv",
        "_truth/customer_lifecycle.csv",
    ]
    .into();
    let written: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(written, expected);
    for file in &manifest.files {
        let rows = if file.path.ends_with(".ndjson") {
            ndjson(&file.path).len()
        } else if file.path.ends_with(".txt") {
            products().len()
        } else {
            Table::read_in(dir.path(), &file.path).rows.len()
        };
        assert_eq!(rows as u64, file.rows, "{}", file.path);
    }
    let rows = |p: &str| manifest.rows(p).unwrap();
    assert_eq!(rows("_truth/customer_lifecycle.csv"), 3_000);
    // Roughly 96% of customers are in each system; a few ERP customers exist twice.
    let accounts = rows("crm/accounts.csv") as f64 / 3_000.0;
    let erp = rows("erp/customers.csv") as f64 / 3_000.0;
    assert!((0.94..0.98).contains(&accounts), "CRM accounts per customer {accounts}");
    assert!((0.95..1.00).contains(&erp), "ERP customers per customer {erp}");
    // A mid-size distributor: about 125 order lines per customer over three years.
    let lines_per_customer = rows("erp/sales_order_lines.csv") as f64 / 3_000.0;
    assert!(
        (80.0..200.0).contains(&lines_per_customer),
        "order lines per customer {lines_per_customer}"
    );
    assert_eq!(rows("crm/campaigns.csv"), 36, "one campaign a month");
    assert_eq!(rows("erp/products.txt"), 600);
}

#[test]
fn every_reference_resolves() {
    let orders = Table::read("erp/sales_orders.csv");
    let lines = Table::read("erp/sales_order_lines.csv");
    let customers = Table::read("erp/customers.csv");
    let invoices = Table::read("erp/invoices.csv");
    let payments = Table::read("erp/payments.csv");
    let returns = Table::read("erp/returns.csv");
    let accounts = Table::read("crm/accounts.csv");
    let contacts = Table::read("crm/contacts.csv");
    let tickets = Table::read("crm/support_tickets.csv");
    let members = Table::read("crm/campaign_members.csv");
    let campaigns = Table::read("crm/campaigns.csv");
    let opportunities = Table::read("crm/opportunities.csv");
    let leads = Table::read("crm/leads.csv");
    let skus: HashSet<String> = products().into_iter().map(|p| p.0).collect();

    let order_ids = orders.set("order_no");
    assert_eq!(order_ids.len(), orders.rows.len(), "order numbers are unique");
    let customer_nos = customers.set("customer_no");
    assert_eq!(customer_nos.len(), customers.rows.len(), "customer numbers are unique");
    let account_ids = accounts.set("Id");
    assert_eq!(account_ids.len(), accounts.rows.len(), "account ids are unique");
    let contact_ids = contacts.set("Id");
    assert_eq!(contact_ids.len(), contacts.rows.len(), "contact ids are unique");

    assert!(
        orders.values("customer_no").all(|c| customer_nos.contains(c)),
        "every order's customer exists"
    );
    assert!(
        lines.values("order_no").all(|o| order_ids.contains(o)),
        "every order line's order exists"
    );
    assert!(
        lines.values("sku").all(|s| skus.contains(s)),
        "every order line's product exists"
    );
    let mut line_keys = HashMap::new();
    let (o, n, q, net) = (
        lines.col("order_no"),
        lines.col("line_no"),
        lines.col("quantity"),
        lines.col("net_amount"),
    );
    let mut order_net: HashMap<&str, i64> = HashMap::new();
    for row in &lines.rows {
        assert!(
            line_keys
                .insert((row[o].as_str(), row[n].as_str()), row[q].parse::<i64>().unwrap())
                .is_none(),
            "order line keys are unique"
        );
        *order_net.entry(row[o].as_str()).or_default() += cents(&row[net]);
    }
    let (oid, total) = (orders.col("order_no"), orders.col("net_total"));
    for row in &orders.rows {
        assert_eq!(
            order_net.get(row[oid].as_str()),
            Some(&cents(&row[total])),
            "order {} total = sum of its lines",
            row[oid]
        );
    }
    let invoice_ids = invoices.set("invoice_no");
    let (io, inet) = (invoices.col("order_no"), invoices.col("net_amount"));
    let order_total: HashMap<&str, i64> = orders
        .rows
        .iter()
        .map(|r| (r[oid].as_str(), cents(&r[total])))
        .collect();
    for row in &invoices.rows {
        assert_eq!(
            order_total.get(row[io].as_str()),
            Some(&cents(&row[inet])),
            "invoice of order {}",
            row[io]
        );
    }
    assert!(
        payments.values("invoice_no").all(|i| invoice_ids.contains(i)),
        "every payment's invoice exists"
    );
    let (ro, rn, rq) = (returns.col("order_no"), returns.col("line_no"), returns.col("quantity"));
    for row in &returns.rows {
        let sold = line_keys
            .get(&(row[ro].as_str(), row[rn].as_str()))
            .unwrap_or_else(|| panic!("return of unknown line {row:?}"));
        assert!(
            row[rq].parse::<i64>().unwrap() <= *sold,
            "no more returned than sold: {row:?}"
        );
    }

    assert!(
        contacts.values("AccountId").all(|a| account_ids.contains(a)),
        "every contact's account exists"
    );
    assert!(tickets.values("AccountId").all(|a| account_ids.contains(a)));
    assert!(tickets.values("ContactId").all(|c| contact_ids.contains(c)));
    assert!(opportunities.values("AccountId").all(|a| account_ids.contains(a)));
    assert!(
        leads
            .values("ConvertedAccountId")
            .all(|a| a.is_empty() || account_ids.contains(a))
    );
    let campaign_ids = campaigns.set("Id");
    assert!(members.values("CampaignId").all(|c| campaign_ids.contains(c)));
    assert!(members.values("ContactId").all(|c| contact_ids.contains(c)));
    let converted: Vec<&str> = members.values("ConvertedOrderNo").filter(|o| !o.is_empty()).collect();
    assert!(
        converted.len() > 20,
        "campaigns convert some members: {}",
        converted.len()
    );
    assert!(
        converted.iter().all(|o| order_ids.contains(o)),
        "every converted order exists in the ERP"
    );
    for activity in ndjson("crm/activities.ndjson") {
        assert!(account_ids.contains(activity["AccountId"].as_str().unwrap()));
        assert!(contact_ids.contains(activity["WhoId"].as_str().unwrap()));
    }
}

fn cents(text: &str) -> i64 {
    let (units, fraction) = text.split_once('.').unwrap();
    let sign = if units.starts_with('-') { -1 } else { 1 };
    units.parse::<i64>().unwrap() * 100 + sign * fraction.parse::<i64>().unwrap()
}

const DIAL: [(&str, &str); 13] = [
    ("DE", "49"),
    ("AT", "43"),
    ("CH", "41"),
    ("NL", "31"),
    ("BE", "32"),
    ("FR", "33"),
    ("GB", "44"),
    ("IE", "353"),
    ("ES", "34"),
    ("IT", "39"),
    ("PL", "48"),
    ("DK", "45"),
    ("SE", "46"),
];

fn normal_tax(t: &str) -> String {
    t.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_uppercase()
}

fn normal_email(e: &str) -> String {
    e.trim().to_lowercase()
}

fn normal_phone(p: &str, country: &str) -> String {
    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
    let dial = DIAL.iter().find(|d| d.0 == country).unwrap().1;
    if p.trim_start().starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else {
        format!("{dial}{}", digits.trim_start_matches('0'))
    }
}

#[test]
fn crm_and_erp_ids_that_should_match_do() {
    let truth = Table::read("_truth/customer_identity.csv");
    let accounts = Table::read("crm/accounts.csv");
    let customers = Table::read("erp/customers.csv");
    let country_code: HashMap<String, &str> = [
        ("Germany", "DE"),
        ("Austria", "AT"),
        ("Switzerland", "CH"),
        ("Netherlands", "NL"),
        ("Belgium", "BE"),
        ("France", "FR"),
        ("United Kingdom", "GB"),
        ("Ireland", "IE"),
        ("Spain", "ES"),
        ("Italy", "IT"),
        ("Poland", "PL"),
        ("Denmark", "DK"),
        ("Sweden", "SE"),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect();
    let account: HashMap<&str, &Vec<String>> = accounts.rows.iter().map(|r| (r[0].as_str(), r)).collect();
    let customer: HashMap<&str, &Vec<String>> = customers.rows.iter().map(|r| (r[0].as_str(), r)).collect();
    let (a_tax, a_email, a_phone, a_country) = (
        accounts.col("VAT_Number__c"),
        accounts.col("Email__c"),
        accounts.col("Phone"),
        accounts.col("BillingCountry"),
    );
    let (c_tax, c_email, c_phone, c_country) = (
        customers.col("vat_id"),
        customers.col("email"),
        customers.col("phone"),
        customers.col("country"),
    );
    let mut by_case: HashMap<String, (usize, usize)> = HashMap::new();
    let mut pairs = 0;
    for row in &truth.rows {
        let (crm, erp, case) = (&row[1], &row[2], &row[3]);
        match case.as_str() {
            "crm_only" => assert!(erp.is_empty() && account.contains_key(crm.as_str())),
            "erp_only" => assert!(crm.is_empty() && customer.contains_key(erp.as_str())),
            _ => {
                pairs += 1;
                let a = account[crm.as_str()];
                let c = customer[erp.as_str()];
                let tax = !a[a_tax].is_empty() && normal_tax(&a[a_tax]) == normal_tax(&c[c_tax]);
                let email = normal_email(&a[a_email]) == normal_email(&c[c_email]);
                let phone =
                    normal_phone(&a[a_phone], country_code[&a[a_country]]) == normal_phone(&c[c_phone], &c[c_country]);
                let expected = match case.as_str() {
                    "exact_tax" => tax,
                    "tax_typo" | "tax_missing" => !tax && email,
                    "phone_only" => !tax && !email && phone,
                    "unmatchable" => !tax && !email && !phone,
                    other => panic!("unknown identity case {other}"),
                };
                let entry = by_case.entry(case.clone()).or_default();
                entry.0 += 1;
                entry.1 += expected as usize;
            }
        }
    }
    for (case, (n, ok)) in &by_case {
        assert_eq!(n, ok, "{case}: {ok} of {n} pairs carry the keys their case says");
    }
    let unmatchable = by_case.get("unmatchable").map_or(0, |c| c.0) as f64 / pairs as f64;
    assert!(
        unmatchable < 0.01,
        "unmatchable pairs must stay under 1% so that recall 0.99 is reachable: {unmatchable}"
    );
    assert!(
        by_case["tax_typo"].0 > 50 && by_case["phone_only"].0 > 20,
        "every kind of drift occurs: {by_case:?}"
    );
}

/// Per real customer: order days, from the ERP through the truth file's identity mapping.
fn order_days_by_customer() -> HashMap<String, Vec<i64>> {
    let truth = Table::read("_truth/customer_identity.csv");
    let orders = Table::read("erp/sales_orders.csv");
    let owner: HashMap<&str, &str> = truth
        .rows
        .iter()
        .filter(|r| !r[2].is_empty())
        .map(|r| (r[2].as_str(), r[0].as_str()))
        .collect();
    let (c, d) = (orders.col("customer_no"), orders.col("order_date"));
    let mut by_customer: HashMap<String, Vec<i64>> = HashMap::new();
    for row in &orders.rows {
        by_customer
            .entry(owner[row[c].as_str()].to_string())
            .or_default()
            .push(day(&row[d]));
    }
    by_customer
}

#[test]
fn churners_buy_less_often_and_complain_more_before_they_stop() {
    let lifecycle = Table::read("_truth/customer_lifecycle.csv");
    let identity = Table::read("_truth/customer_identity.csv");
    let tickets = Table::read("crm/support_tickets.csv");
    let orders = order_days_by_customer();
    let customer_of_account: HashMap<&str, &str> = identity
        .rows
        .iter()
        .filter(|r| !r[1].is_empty())
        .map(|r| (r[1].as_str(), r[0].as_str()))
        .collect();
    let mut tickets_by: HashMap<&str, Vec<i64>> = HashMap::new();
    let (ta, tc) = (tickets.col("AccountId"), tickets.col("CreatedDate"));
    for row in &tickets.rows {
        tickets_by
            .entry(customer_of_account[row[ta].as_str()])
            .or_default()
            .push(day(&row[tc]));
    }
    let (idx, churned, churn_date, first) = (
        lifecycle.col("customer_index"),
        lifecycle.col("churned"),
        lifecycle.col("churn_date"),
        lifecycle.col("first_active_on"),
    );
    let (mut early_orders, mut late_orders, mut early_tickets, mut late_tickets, mut churners) = (0, 0, 0, 0, 0);
    let mut after_churn = 0;
    let count = |days: Option<&Vec<i64>>, from: i64, to: i64| {
        days.map_or(0, |d| d.iter().filter(|&&x| x >= from && x < to).count())
    };
    for row in lifecycle.rows.iter().filter(|r| r[churned] == "true") {
        let (start, stop) = (day(&row[first]), day(&row[churn_date]));
        let o = orders.get(&row[idx]);
        let t = tickets_by.get(row[idx].as_str());
        after_churn += count(o, stop, i64::MAX) + count(t, stop, i64::MAX);
        if stop - start < 365 + 90 {
            continue;
        }
        churners += 1;
        early_orders += count(o, start, start + 365);
        late_orders += count(o, stop - 90, stop);
        early_tickets += count(t, start, start + 365);
        late_tickets += count(t, stop - 90, stop);
    }
    assert!(churners >= 50, "enough churners to measure: {churners}");
    assert_eq!(after_churn, 0, "no churner orders or opens a ticket after leaving");
    let early = early_orders as f64 / 365.0;
    let late = late_orders as f64 / 90.0;
    assert!(
        late < 0.6 * early,
        "orders per day: first year {early:.3}, last 90 days {late:.3}"
    );
    let early = early_tickets as f64 / 365.0;
    let late = late_tickets as f64 / 90.0;
    assert!(
        late > 1.5 * early,
        "tickets per day: first year {early:.3}, last 90 days {late:.3}"
    );
}

#[test]
fn demand_has_weekly_and_yearly_seasons_and_grows() {
    let orders = Table::read("erp/sales_orders.csv");
    let mut by_weekday = [0usize; 7];
    let mut by_year: HashMap<i64, usize> = HashMap::new();
    for date in orders.values("order_date") {
        let d = day(date);
        by_weekday[((d + 3).rem_euclid(7)) as usize] += 1;
        if &date[5..7] >= "10" {
            // Window years run October to September.
            *by_year.entry(date[..4].parse::<i64>().unwrap()).or_default() += 1;
        } else {
            *by_year.entry(date[..4].parse::<i64>().unwrap() - 1).or_default() += 1;
        }
    }
    let weekday = by_weekday[..5].iter().sum::<usize>() as f64 / 5.0;
    let weekend = by_weekday[5..].iter().sum::<usize>() as f64 / 2.0;
    assert!(
        weekday > 3.0 * weekend,
        "orders per weekday {weekday}, per weekend day {weekend}"
    );
    assert!(by_year[&2025] > by_year[&2023], "demand grows: {by_year:?}");

    // Heating sells in winter, outdoor goods in summer.
    let lines = Table::read("erp/sales_order_lines.csv");
    let category: HashMap<String, String> = products().into_iter().collect();
    let order_month: HashMap<&str, u32> = orders
        .rows
        .iter()
        .map(|r| (r[0].as_str(), r[2][5..7].parse().unwrap()))
        .collect();
    let mut units: HashMap<(&str, bool), i64> = HashMap::new();
    let (o, s, q) = (lines.col("order_no"), lines.col("sku"), lines.col("quantity"));
    for row in &lines.rows {
        let month = order_month[row[o].as_str()];
        let winter = matches!(month, 12 | 1 | 2);
        let summer = matches!(month, 6..=8);
        if winter || summer {
            *units.entry((category[&row[s]].as_str(), winter)).or_default() += row[q].parse::<i64>().unwrap();
        }
    }
    let ratio = |c: &str| units[&(c, true)] as f64 / units[&(c, false)] as f64;
    assert!(
        ratio("Heating & Climate") > 2.0,
        "heating winter/summer {}",
        ratio("Heating & Climate")
    );
    assert!(
        ratio("Outdoor & Grounds") < 0.5,
        "outdoor winter/summer {}",
        ratio("Outdoor & Grounds")
    );
}

#[test]
fn promotions_lift_quantities_and_some_products_sell_together() {
    let prices = Table::read("erp/price_lists.csv");
    let mut promo: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for row in prices.rows.iter().filter(|r| r[0].starts_with("PROMO-")) {
        promo
            .entry(row[1].as_str())
            .or_default()
            .push((day(&row[2]), day(&row[3])));
    }
    let orders = Table::read("erp/sales_orders.csv");
    let lines = Table::read("erp/sales_order_lines.csv");
    let order_day: HashMap<&str, i64> = orders.rows.iter().map(|r| (r[0].as_str(), day(&r[2]))).collect();
    let (o, s, q) = (lines.col("order_no"), lines.col("sku"), lines.col("quantity"));
    // Per product: mean quantity inside and outside its promotions.
    let mut stats: HashMap<&str, [(f64, f64); 2]> = HashMap::new();
    let mut basket: HashMap<&str, Vec<&str>> = HashMap::new();
    for row in &lines.rows {
        let d = order_day[row[o].as_str()];
        let on_promo = promo
            .get(row[s].as_str())
            .is_some_and(|w| w.iter().any(|&(a, b)| d >= a && d <= b));
        let entry = &mut stats.entry(row[s].as_str()).or_default()[on_promo as usize];
        entry.0 += row[q].parse::<f64>().unwrap();
        entry.1 += 1.0;
        basket.entry(row[o].as_str()).or_default().push(row[s].as_str());
    }
    let (mut higher, mut compared) = (0, 0);
    for [off, on] in stats.values() {
        if off.1 >= 30.0 && on.1 >= 30.0 {
            compared += 1;
            higher += (on.0 / on.1 > off.0 / off.1) as usize;
        }
    }
    assert!(
        compared >= 20 && higher as f64 > 0.75 * compared as f64,
        "promotions lift quantity for {higher} of {compared} products"
    );

    // Association: the strongest pair among frequently sold products has a lift far above 1.
    let mut single: HashMap<&str, f64> = HashMap::new();
    let mut pair: HashMap<(&str, &str), f64> = HashMap::new();
    for items in basket.values() {
        for (i, a) in items.iter().enumerate() {
            *single.entry(a).or_default() += 1.0;
            for b in &items[i + 1..] {
                let key = if a < b { (*a, *b) } else { (*b, *a) };
                *pair.entry(key).or_default() += 1.0;
            }
        }
    }
    let n = basket.len() as f64;
    let best = pair
        .iter()
        .filter(|(_, c)| **c >= 30.0)
        .map(|((a, b), c)| (c / n) / ((single[a] / n) * (single[b] / n)))
        .fold(0.0, f64::max);
    assert!(best > 5.0, "strongest frequent pair has lift {best}");
}

#[test]
fn inventory_covers_every_product_and_day_in_stock() {
    let inventory = Table::read("erp/inventory_snapshots.csv.gz");
    let (_, manifest) = company();
    let dates = inventory.set("snapshot_date");
    let first = day(&manifest.start_date);
    let last = day(&manifest.options.end_date);
    assert_eq!(dates.len() as i64, last - first + 1, "one snapshot a day");
    assert_eq!(inventory.set("warehouse"), HashSet::from(["DC-NORTH", "DC-WEST"]));
    assert!(inventory.values("on_hand").all(|v| v.parse::<i64>().unwrap() >= 0));
    // Every launched product is counted in every warehouse every day, and nothing else.
    let launches: Vec<i64> = catalogue().iter().map(|p| p.launched).collect();
    let mut rows_per_day: HashMap<(&str, &str), usize> = HashMap::new();
    for row in &inventory.rows {
        *rows_per_day.entry((row[0].as_str(), row[1].as_str())).or_default() += 1;
    }
    for ((date, warehouse), rows) in rows_per_day {
        let launched = launches.iter().filter(|&&l| l <= day(date)).count();
        assert_eq!(
            rows, launched,
            "{warehouse} on {date}: {rows} rows for {launched} launched products"
        );
    }
    let out_of_stock = inventory.values("on_hand").filter(|v| *v == "0").count() as f64 / inventory.rows.len() as f64;
    assert!(
        out_of_stock < 0.25,
        "stock-outs happen but are not the rule: {out_of_stock}"
    );
}

#[test]
fn nothing_happens_after_the_window_ends() {
    let (dir, manifest) = company();
    assert_no_event_after(dir.path(), manifest);
}

#[test]
fn nothing_happens_after_a_window_that_ends_mid_month() {
    let (dir, manifest) = generated(&SampleOptions {
        customers: 600,
        seed: 9,
        years: 2,
        end_date: "2026-06-17".into(),
    });
    assert_no_event_after(dir.path(), &manifest);
}

/// Due dates and the expected close of open opportunities lie in the future; events do not.
fn assert_no_event_after(root: &Path, manifest: &Manifest) {
    let end = day(&manifest.options.end_date);
    let iso = |v: &str| {
        // ERP customers print DD.MM.YYYY.
        if v.as_bytes().get(2) == Some(&b'.') {
            format!("{}-{}-{}", &v[6..10], &v[3..5], &v[..2])
        } else {
            v.to_string()
        }
    };
    for (path, columns) in [
        ("erp/sales_orders.csv", &["order_date"][..]),
        ("erp/invoices.csv", &["invoice_date"]),
        ("erp/payments.csv", &["payment_date"]),
        ("erp/returns.csv", &["return_date"]),
        ("erp/customers.csv", &["created_on"]),
        ("crm/accounts.csv", &["CreatedDate"]),
        ("crm/contacts.csv", &["CreatedDate"]),
        ("crm/leads.csv", &["CreatedDate", "ConvertedDate"]),
        ("crm/support_tickets.csv", &["CreatedDate", "ClosedDate"]),
        ("crm/opportunities.csv", &["CreatedDate"]),
        ("crm/campaigns.csv", &["StartDate"]),
        ("crm/campaign_members.csv", &["SentDate"]),
        (
            "_truth/customer_lifecycle.csv",
            &["created_on", "first_active_on", "churn_date", "decline_start"],
        ),
    ] {
        let table = Table::read_in(root, path);
        for column in columns {
            let late = table
                .values(column)
                .filter(|v| !v.is_empty() && day(&iso(v)) > end)
                .count();
            assert_eq!(
                late, 0,
                "{path}: {late} values of {column} after {}",
                manifest.options.end_date
            );
        }
    }
    let late = ndjson_in(root, "crm/activities.ndjson")
        .iter()
        .filter(|a| day(a["ActivityDate"].as_str().unwrap()) > end)
        .count();
    assert_eq!(late, 0, "activities after the window");
    let opportunities = Table::read_in(root, "crm/opportunities.csv");
    let (closed, close) = (opportunities.col("IsClosed"), opportunities.col("CloseDate"));
    assert!(
        opportunities
            .rows
            .iter()
            .all(|r| r[closed] == "false" || day(&r[close]) <= end),
        "closed deals closed in the window"
    );
}

#[test]
fn events_happen_in_order_and_to_the_right_people() {
    let orders = Table::read("erp/sales_orders.csv");
    let lines = Table::read("erp/sales_order_lines.csv");
    let invoices = Table::read("erp/invoices.csv");
    let payments = Table::read("erp/payments.csv");
    let returns = Table::read("erp/returns.csv");
    let contacts = Table::read("crm/contacts.csv");
    let tickets = Table::read("crm/support_tickets.csv");
    let members = Table::read("crm/campaign_members.csv");
    let identity = Table::read("_truth/customer_identity.csv");

    // Orders: what they sold was on sale.
    let order: HashMap<&str, &Vec<String>> = orders.rows.iter().map(|r| (r[0].as_str(), r)).collect();
    let (order_date, order_customer, status) = (
        orders.col("order_date"),
        orders.col("customer_no"),
        orders.col("status"),
    );
    let launched: HashMap<String, i64> = catalogue().into_iter().map(|p| (p.sku, p.launched)).collect();
    for row in &lines.rows {
        let sold_on = day(&order[row[0].as_str()][order_date]);
        assert!(
            launched[&row[2]] <= sold_on,
            "{} sold on {sold_on} before its launch",
            row[2]
        );
    }

    // Invoices bill the order's customer after the order; payments never exceed them nor precede them.
    let (inv_order, inv_customer, inv_date, gross) = (
        invoices.col("order_no"),
        invoices.col("customer_no"),
        invoices.col("invoice_date"),
        invoices.col("gross_amount"),
    );
    let invoice: HashMap<&str, &Vec<String>> = invoices.rows.iter().map(|r| (r[0].as_str(), r)).collect();
    for row in &invoices.rows {
        let o = order[row[inv_order].as_str()];
        assert_eq!(
            row[inv_customer], o[order_customer],
            "invoice {} bills the order's customer",
            row[0]
        );
        assert!(
            day(&row[inv_date]) >= day(&o[order_date]),
            "invoice {} after its order",
            row[0]
        );
        assert_eq!(o[status], "COMPLETED", "only completed orders are invoiced");
    }
    let mut paid: HashMap<&str, i64> = HashMap::new();
    let (pay_invoice, pay_date, amount) = (
        payments.col("invoice_no"),
        payments.col("payment_date"),
        payments.col("amount"),
    );
    for row in &payments.rows {
        let i = invoice[row[pay_invoice].as_str()];
        assert!(
            day(&row[pay_date]) >= day(&i[inv_date]),
            "payment {} after its invoice",
            row[0]
        );
        *paid.entry(row[pay_invoice].as_str()).or_default() += cents(&row[amount]);
    }
    for (invoice_no, total) in paid {
        assert!(
            total <= cents(&invoice[invoice_no][gross]),
            "{invoice_no} paid {total} cents, more than billed"
        );
    }

    // Returns come back after delivery, from delivered orders only.
    let (ret_order, ret_date) = (returns.col("order_no"), returns.col("return_date"));
    for row in &returns.rows {
        let o = order[row[ret_order].as_str()];
        assert_eq!(o[status], "COMPLETED", "return {} of a {} order", row[0], o[status]);
        assert!(
            day(&row[ret_date]) > day(&o[order_date]),
            "return {} after its order",
            row[0]
        );
    }

    // CRM events involve contacts of the same account who had already joined.
    let contact: HashMap<&str, (&str, i64)> = contacts
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str(),
                (
                    r[contacts.col("AccountId")].as_str(),
                    day(&r[contacts.col("CreatedDate")]),
                ),
            )
        })
        .collect();
    let (t_account, t_contact, t_created) = (
        tickets.col("AccountId"),
        tickets.col("ContactId"),
        tickets.col("CreatedDate"),
    );
    for row in &tickets.rows {
        let (account, joined) = contact[row[t_contact].as_str()];
        assert_eq!(account, row[t_account], "ticket {}: contact of another account", row[0]);
        assert!(
            joined <= day(&row[t_created]),
            "ticket {}: contact had not joined yet",
            row[0]
        );
    }
    let reached: HashSet<(&str, &str)> = members
        .rows
        .iter()
        .filter(|r| r[members.col("IsControl")] == "false")
        .map(|r| {
            (
                r[members.col("CampaignId")].as_str(),
                r[members.col("AccountId")].as_str(),
            )
        })
        .collect();
    let mut campaign_emails = 0;
    for activity in ndjson("crm/activities.ndjson") {
        let (account, joined) = contact[activity["WhoId"].as_str().unwrap()];
        assert_eq!(
            account,
            activity["AccountId"].as_str().unwrap(),
            "activity with a contact of another account"
        );
        assert!(
            joined <= day(activity["ActivityDate"].as_str().unwrap()),
            "activity before its contact joined"
        );
        if let Some(campaign) = activity["CampaignId"].as_str() {
            campaign_emails += 1;
            assert!(
                reached.contains(&(campaign, account)),
                "campaign e-mail to an account the campaign did not reach"
            );
        }
    }
    assert!(campaign_emails > 0, "some e-mails belong to campaigns");

    // Conversions: the member's own customer, a real order, after the send.
    let customer_of_account: HashMap<&str, &str> = identity
        .rows
        .iter()
        .filter(|r| !r[1].is_empty())
        .map(|r| (r[1].as_str(), r[0].as_str()))
        .collect();
    let customer_of_erp: HashMap<&str, &str> = identity
        .rows
        .iter()
        .filter(|r| !r[2].is_empty())
        .map(|r| (r[2].as_str(), r[0].as_str()))
        .collect();
    let (m_account, m_sent, m_order) = (
        members.col("AccountId"),
        members.col("SentDate"),
        members.col("ConvertedOrderNo"),
    );
    for row in members.rows.iter().filter(|r| !r[m_order].is_empty()) {
        let o = order[row[m_order].as_str()];
        assert_ne!(o[status], "CANCELLED", "conversion to a cancelled order");
        assert!(day(&o[order_date]) >= day(&row[m_sent]), "conversion before the send");
        assert_eq!(
            customer_of_erp[o[order_customer].as_str()],
            customer_of_account[row[m_account].as_str()]
        );
    }
}
