//! One customer across CRM and ERP: matching records of `staging.customer` on normalised tax id,
//! e-mail and phone, and giving every real customer one `customer_key`.
//!
//! Records are nodes; two records sharing a normalised key are joined (union-find), so a customer
//! known as a CRM account and as two ERP numbers (a duplicate in the ERP) ends up as one cluster.
//! Keys that many records share are not evidence of one customer (a shared switchboard, a role
//! address at a hosting company), so a key value held by more than [`MAX_SHARED`] records is
//! ignored. Every join is kept as evidence in `core.customer_match`.

use std::collections::HashMap;

/// A key value held by more records than this says nothing about who they are.
pub const MAX_SHARED: usize = 4;

/// One record of `staging.customer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerRecord {
    /// `crm`, `erp`, ...
    pub source_system: String,
    /// Id in that system.
    pub customer_id: String,
    /// Tax id as the source wrote it.
    pub tax_id: Option<String>,
    /// E-mail as written.
    pub email: Option<String>,
    /// Phone as written.
    pub phone: Option<String>,
    /// Country (ISO code or English name), for national phone numbers.
    pub country: Option<String>,
}

/// A join between two records, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of one record.
    pub left: usize,
    /// Index of the other.
    pub right: usize,
    /// `tax_id`, `email` or `phone`.
    pub rule: &'static str,
    /// The normalised value they share.
    pub value: String,
}

/// The outcome: a cluster id per record (the smallest record index in its cluster) and the evidence.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// `cluster[i]` is the cluster of record `i`.
    pub cluster: Vec<usize>,
    /// Every join made.
    pub matches: Vec<Match>,
}

/// `de 123 456 789`, `DE-123456789` -> `DE123456789`.
pub fn normalize_tax_id(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (s.len() >= 5).then_some(s)
}

/// Trimmed and lower-cased; `None` unless it looks like an address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let s = raw.trim().to_lowercase();
    let (local, domain) = s.split_once('@')?;
    (!local.is_empty() && domain.contains('.')).then_some(s)
}

/// E.164 digits without the plus: `+49 30 1234567`, `0049 30-1234567`, `030/1234567` (in Germany)
/// all give `49301234567`. National numbers need the country's dialling code.
pub fn normalize_phone(raw: &str, country: Option<&str>) -> Option<String> {
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = if trimmed.starts_with('+') {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(rest) = digits.strip_prefix('0') {
        let dial = country.and_then(country_info).map(|c| c.dial)?;
        format!("{dial}{rest}")
    } else {
        return None;
    };
    (international.len() >= 8).then_some(international)
}

/// What the warehouse knows of a country.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166 alpha-2.
    pub code: &'static str,
    /// English name.
    pub name: &'static str,
    /// International dialling code.
    pub dial: &'static str,
    /// Sales region.
    pub region: &'static str,
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "DE",
        name: "Germany",
        dial: "49",
        region: "DACH",
    },
    Country {
        code: "AT",
        name: "Austria",
        dial: "43",
        region: "DACH",
    },
    Country {
        code: "CH",
        name: "Switzerland",
        dial: "41",
        region: "DACH",
    },
    Country {
        code: "NL",
        name: "Netherlands",
        dial: "31",
        region: "Benelux",
    },
    Country {
        code: "BE",
        name: "Belgium",
        dial: "32",
        region: "Benelux",
    },
    Country {
        code: "LU",
        name: "Luxembourg",
        dial: "352",
        region: "Benelux",
    },
    Country {
        code: "FR",
        name: "France",
        dial: "33",
        region: "France",
    },
    Country {
        code: "GB",
        name: "United Kingdom",
        dial: "44",
        region: "UK & Ireland",
    },
    Country {
        code: "IE",
        name: "Ireland",
        dial: "353",
        region: "UK & Ireland",
    },
    Country {
        code: "ES",
        name: "Spain",
        dial: "34",
        region: "Southern Europe",
    },
    Country {
        code: "PT",
        name: "Portugal",
        dial: "351",
        region: "Southern Europe",
    },
    Country {
        code: "IT",
        name: "Italy",
        dial: "39",
        region: "Southern Europe",
    },
    Country {
        code: "GR",
        name: "Greece",
        dial: "30",
        region: "Southern Europe",
    },
    Country {
        code: "PL",
        name: "Poland",
        dial: "48",
        region: "Central Europe",
    },
    Country {
        code: "CZ",
        name: "Czechia",
        dial: "420",
        region: "Central Europe",
    },
    Country {
        code: "HU",
        name: "Hungary",
        dial: "36",
        region: "Central Europe",
    },
    Country {
        code: "DK",
        name: "Denmark",
        dial: "45",
        region: "Nordics",
    },
    Country {
        code: "SE",
        name: "Sweden",
        dial: "46",
        region: "Nordics",
    },
    Country {
        code: "NO",
        name: "Norway",
        dial: "47",
        region: "Nordics",
    },
    Country {
        code: "FI",
        name: "Finland",
        dial: "358",
        region: "Nordics",
    },
    Country {
        code: "US",
        name: "United States",
        dial: "1",
        region: "North America",
    },
    Country {
        code: "CA",
        name: "Canada",
        dial: "1",
        region: "North America",
    },
];

/// The country with this ISO code or English name (any case).
pub fn country_info(code_or_name: &str) -> Option<&'static Country> {
    let s = code_or_name.trim();
    COUNTRIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(s) || c.name.eq_ignore_ascii_case(s))
}

/// Cluster the records.
pub fn resolve(records: &[CustomerRecord]) -> Resolution {
    let mut parent: Vec<usize> = (0..records.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut matches = Vec::new();
    type Normalizer = fn(&CustomerRecord) -> Option<String>;
    let rules: [(&'static str, Normalizer); 3] = [
        ("tax_id", |r| r.tax_id.as_deref().and_then(normalize_tax_id)),
        ("email", |r| r.email.as_deref().and_then(normalize_email)),
        ("phone", |r| {
            r.phone
                .as_deref()
                .and_then(|p| normalize_phone(p, r.country.as_deref()))
        }),
    ];
    for (rule, key_of) in rules {
        let mut holders: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, record) in records.iter().enumerate() {
            if let Some(key) = key_of(record) {
                holders.entry(key).or_default().push(i);
            }
        }
        let mut keys: Vec<_> = holders
            .into_iter()
            .filter(|(_, h)| h.len() > 1 && h.len() <= MAX_SHARED)
            .collect();
        keys.sort();
        for (value, holders) in keys {
            let first = holders[0];
            for &other in &holders[1..] {
                matches.push(Match {
                    left: first,
                    right: other,
                    rule,
                    value: value.clone(),
                });
                let (a, b) = (find(&mut parent, first), find(&mut parent, other));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let cluster = (0..records.len()).map(|i| find(&mut parent, i)).collect();
    Resolution { cluster, matches }
}

/// Pairwise precision and recall of a clustering against the truth (a true cluster label per record).
pub fn pair_quality(predicted: &[usize], truth: &[u64]) -> (f64, f64) {
    let pairs = |labels: &mut dyn Iterator<Item = (usize, u64)>| {
        let mut by: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, l) in labels {
            by.entry(l).or_default().push(i);
        }
        let mut set = std::collections::HashSet::new();
        for members in by.values() {
            for (a, &x) in members.iter().enumerate() {
                for &y in &members[a + 1..] {
                    set.insert((x.min(y), x.max(y)));
                }
            }
        }
        set
    };
    let predicted_pairs = pairs(&mut predicted.iter().enumerate().map(|(i, c)| (i, *c as u64)));
    let true_pairs = pairs(&mut truth.iter().enumerate().map(|(i, t)| (i, *t)));
    let both = predicted_pairs.intersection(&true_pairs).count() as f64;
    let precision = if predicted_pairs.is_empty() {
        1.0
    } else {
        both / predicted_pairs.len() as f64
    };
    let recall = if true_pairs.is_empty() {
        1.0
    } else {
        both / true_pairs.len() as f64
    };
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_as_the_sources_drift() {
        assert_eq!(normalize_tax_id("de 123 456 789").as_deref(), Some("DE123456789"));
        assert_eq!(normalize_tax_id("DE-123456789").as_deref(), Some("DE123456789"));
        assert_eq!(normalize_tax_id(""), None);
        assert_eq!(
            normalize_email(" Anna.Berg@Example.DE ").as_deref(),
            Some("anna.berg@example.de")
        );
        assert_eq!(normalize_email("n/a"), None);
        for raw in [
            "+49 30 1234567",
            "0049 30-1234567",
            "030/1234567",
            "030 1234567",
            "+49301234567",
        ] {
            assert_eq!(
                normalize_phone(raw, Some("DE")).as_deref(),
                Some("49301234567"),
                "{raw}"
            );
        }
        assert_eq!(
            normalize_phone("030 1234567", Some("Germany")).as_deref(),
            Some("49301234567")
        );
        assert_eq!(
            normalize_phone("030 1234567", None),
            None,
            "a national number needs its country"
        );
    }

    #[test]
    fn records_cluster_through_any_shared_key() {
        let r = |sys: &str, id: &str, tax: &str, email: &str, phone: &str| CustomerRecord {
            source_system: sys.into(),
            customer_id: id.into(),
            tax_id: Some(tax.into()),
            email: Some(email.into()),
            phone: Some(phone.into()),
            country: Some("DE".into()),
        };
        let records = [
            r("crm", "A", "DE111111111", "a@x.de", "+49 30 1111111"),
            r("erp", "1", "de 111 111 111", "", "030 2222222"),
            r("erp", "2", "", "", "030/2222222"), // duplicate of 1 by phone only
            r("crm", "B", "", "b@y.de", ""),
            r("erp", "3", "DE333333333", "B@y.de", ""),
            r("erp", "4", "", "c@z.de", ""),
        ];
        let res = resolve(&records);
        assert_eq!(res.cluster, [0, 0, 0, 3, 3, 5]);
        assert!(
            res.matches
                .iter()
                .any(|m| m.rule == "phone" && m.value == "49302222222")
        );
        let truth = [7, 7, 7, 8, 8, 9];
        assert_eq!(pair_quality(&res.cluster, &truth), (1.0, 1.0));
        let (p, r) = pair_quality(&[0, 0, 2, 3, 3, 3], &truth);
        assert!((p - 0.5).abs() < 1e-9 && (r - 0.5).abs() < 1e-9, "{p} {r}");
    }
}

/// What a refresh of `core.customer` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CustomerRefresh {
    /// Records in `staging.customer`.
    pub records: u64,
    /// Customers after matching.
    pub customers: u64,
    /// Customers known to both CRM and ERP.
    pub in_both: u64,
    /// Joins kept as evidence.
    pub matches: u64,
}

/// A stable non-negative key for a text id: FNV-1a, 63 bits. Products are keyed by SKU and orders
/// by order id this way, so a key is the same in every refresh without a table of keys given out.
/// Customers are numbered instead (`assign_customer_keys`): a cluster of records has no one
/// id to hash that lasts.
pub fn stable_key(anchor: &str) -> i64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in anchor.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 1) as i64
}

/// Where `core.customer`'s commit keeps the highest customer key ever issued, so that the key of a
/// customer who is gone (records deleted, or merged into another) is never given to someone else.
const HIGHEST_KEY: &str = "tributary.customer_key.highest";

/// The customer keys the last refresh gave out: each source record's key and the highest key
/// ever issued. Empty for a data directory whose customers were keyed by hash (before keys were
/// numbered): the first refresh that resolves its customers again (after a change to
/// `staging.customer`) numbers them all afresh, and the facts and marts are rebuilt with them.
#[derive(Debug, Default)]
struct IssuedKeys {
    /// `(source_system, customer_id)` -> `customer_key`.
    by_record: HashMap<(String, String), i64>,
    /// No key at or below this is new.
    highest: i64,
}

impl IssuedKeys {
    async fn read(store: &crate::store::Store) -> Result<Self, crate::store::StoreError> {
        use datafusion::arrow::array::{AsArray, Int64Array};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::DataType;

        use crate::layout::Layer;

        let highest = store
            .latest_commit(Layer::Core, "customer")
            .await?
            .and_then(|commit| commit.get(HIGHEST_KEY).and_then(serde_json::Value::as_i64));
        let Some(mut highest) = highest else {
            return Ok(Self::default());
        };
        if !store.exists(Layer::Core, "customer_source") {
            return Ok(Self {
                by_record: HashMap::new(),
                highest,
            });
        }
        let batches = store
            .query(
                &[(Layer::Core, "customer_source")],
                "SELECT source_system, customer_id, customer_key FROM core.customer_source",
            )
            .await?;
        let mut by_record = HashMap::new();
        for batch in &batches {
            let system = cast(batch.column(0), &DataType::Utf8).expect("casts to text");
            let id = cast(batch.column(1), &DataType::Utf8).expect("casts to text");
            let key = batch.column(2).as_any().downcast_ref::<Int64Array>().expect("integer");
            for ((system, id), key) in system.as_string::<i32>().iter().zip(id.as_string::<i32>()).zip(key) {
                if let (Some(system), Some(id), Some(key)) = (system, id, key) {
                    by_record.insert((system.to_string(), id.to_string()), key);
                    // Keys a refresh stopped before `core.customer` gave out (see below).
                    highest = highest.max(key);
                }
            }
        }
        Ok(Self { by_record, highest })
    }
}

/// A `customer_key` for each cluster (`members`: the record indices of each cluster, by cluster,
/// in record order), and the highest key issued after this. Keys are numbers from 1: a grouping or
/// join by customer then indexes an array by key instead of hashing a 64-bit value (see
/// `partial_aggregate`'s slots), and an analyst can read them. A cluster keeps the key its records
/// had, the first record's if they had several (two customers found to be one keep the older
/// key of the first); a key is given to one cluster only (of two found in one customer, the first
/// keeps it, the other gets a new one); a cluster of records never seen before gets the next number.
fn assign_customer_keys(
    records: &[CustomerRecord],
    members: &std::collections::BTreeMap<usize, Vec<usize>>,
    issued: &IssuedKeys,
) -> (HashMap<usize, i64>, i64) {
    let mut given = std::collections::HashSet::with_capacity(members.len());
    let mut highest = issued.highest;
    let mut key_of_cluster = HashMap::with_capacity(members.len());
    for (&cluster, records_of_cluster) in members {
        let kept = records_of_cluster.iter().find_map(|&i| {
            let record = &records[i];
            let key = issued
                .by_record
                .get(&(record.source_system.clone(), record.customer_id.clone()))?;
            (!given.contains(key)).then_some(*key)
        });
        let key = kept.unwrap_or_else(|| {
            highest += 1;
            highest
        });
        given.insert(key);
        key_of_cluster.insert(cluster, key);
    }
    (key_of_cluster, highest)
}

/// Rebuild `core.customer`, `core.customer_source` and `core.customer_match` from `staging.customer`.
/// `metadata` is committed with each of them (the refresh records what they were built from).
pub async fn refresh_customers(
    store: &crate::store::Store,
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<CustomerRefresh, crate::store::StoreError> {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;

    use crate::layout::Layer;

    const TEXT: [&str; 11] = [
        "source_system",
        "customer_id",
        "name",
        "email",
        "phone",
        "tax_id",
        "segment",
        "industry",
        "country",
        "region",
        "city",
    ];
    // No customer records yet (a company whose first ingest brought only orders): empty tables
    // of the right shape, so the facts still build and show their customers as unresolved.
    let batches = if !store.exists(Layer::Staging, "customer") {
        Vec::new()
    } else {
        store
            .query(
                &[(Layer::Staging, "customer")],
                &format!(
                    "SELECT {}, CAST(created_at AS BIGINT) AS created_us, is_active FROM staging.customer \
                 ORDER BY source_system, customer_id",
                    TEXT.join(", ")
                ),
            )
            .await?
    };
    // Column-major text, with created_at as microseconds and is_active.
    let mut text: Vec<Vec<Option<String>>> = vec![Vec::new(); TEXT.len()];
    let mut created: Vec<Option<i64>> = Vec::new();
    let mut active: Vec<Option<bool>> = Vec::new();
    for batch in &batches {
        for (c, column) in text.iter_mut().enumerate() {
            let t = cast(batch.column(c), &DataType::Utf8).expect("casts to text");
            let t = t.as_any().downcast_ref::<StringArray>().expect("text");
            column.extend(t.iter().map(|v| v.map(str::to_string)));
        }
        let c = cast(batch.column(TEXT.len()), &DataType::Int64).expect("casts to integer");
        let c = c.as_any().downcast_ref::<Int64Array>().expect("integer");
        created.extend(c.iter());
        let a = batch
            .column(TEXT.len() + 1)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("boolean");
        active.extend(a.iter());
    }
    let n = created.len();
    let col = |name: &str| TEXT.iter().position(|t| *t == name).expect("selected");
    let records: Vec<CustomerRecord> = (0..n)
        .map(|i| CustomerRecord {
            source_system: text[col("source_system")][i].clone().unwrap_or_default(),
            customer_id: text[col("customer_id")][i].clone().unwrap_or_default(),
            tax_id: text[col("tax_id")][i].clone(),
            email: text[col("email")][i].clone(),
            phone: text[col("phone")][i].clone(),
            country: text[col("country")][i].clone(),
        })
        .collect();
    let resolution = resolve(&records);

    // Members of each cluster, CRM records first: the CRM is where names, segments and industries
    // are kept up to date; the ERP fills what the CRM lacks.
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, c) in resolution.cluster.iter().enumerate() {
        members.entry(*c).or_default().push(i);
    }
    let issued = IssuedKeys::read(store).await?;
    let (key_of_cluster, highest) = assign_customer_keys(&records, &members, &issued);
    let first = |m: &[usize], column: usize| -> Option<String> {
        let mut ordered: Vec<usize> = m.to_vec();
        ordered.sort_by_key(|&i| (records[i].source_system != "crm", i));
        ordered
            .iter()
            .find_map(|&i| text[column][i].clone().filter(|v| !v.trim().is_empty()))
    };
    let mut out: Vec<Vec<Option<String>>> = vec![Vec::new(); 11];
    let mut keys = Vec::new();
    let mut out_created = Vec::new();
    let mut out_active = Vec::new();
    let mut in_both = 0;
    for (c, m) in &members {
        keys.push(key_of_cluster[c]);
        let crm = m
            .iter()
            .find(|&&i| records[i].source_system == "crm")
            .map(|&i| records[i].customer_id.clone());
        let erp = m
            .iter()
            .filter(|&&i| records[i].source_system == "erp")
            .map(|&i| records[i].customer_id.clone())
            .min_by_key(|id| (id.len(), id.clone()));
        in_both += u64::from(crm.is_some() && erp.is_some());
        let country = first(m, col("country"));
        let info = country.as_deref().and_then(country_info);
        out[0].push(crm);
        out[1].push(erp);
        out[2].push(first(m, col("name")));
        out[3].push(first(m, col("email")).and_then(|e| normalize_email(&e)));
        out[4].push(m.iter().find_map(|&i| {
            records[i]
                .phone
                .as_deref()
                .and_then(|p| normalize_phone(p, records[i].country.as_deref()))
                .map(|d| format!("+{d}"))
        }));
        out[5].push(
            m.iter()
                .find_map(|&i| records[i].tax_id.as_deref().and_then(normalize_tax_id)),
        );
        out[6].push(first(m, col("segment")));
        out[7].push(first(m, col("industry")));
        out[8].push(info.map(|c| c.code.to_string()).or(country.clone()));
        out[9].push(first(m, col("region")).or_else(|| info.map(|c| c.region.to_string())));
        out[10].push(first(m, col("city")));
        out_created.push(m.iter().filter_map(|&i| created[i]).min());
        out_active.push(m.iter().any(|&i| active[i].unwrap_or(true)));
    }
    let names = [
        "crm_account_id",
        "erp_customer_id",
        "name",
        "email",
        "phone",
        "tax_id",
        "segment",
        "industry",
        "country",
        "region",
        "city",
    ];
    let mut fields = vec![Field::new("customer_key", DataType::Int64, false)];
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)));
    fields.push(Field::new(
        "created_at",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    fields.push(Field::new("is_active", DataType::Boolean, false));
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(keys))];
    arrays.extend(out.into_iter().map(|v| Arc::new(StringArray::from(v)) as ArrayRef));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from(out_created).with_timezone("UTC"),
    ));
    arrays.push(Arc::new(BooleanArray::from(out_active)));
    let customer = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match");

    let source = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("source_system", DataType::Utf8, false),
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("customer_key", DataType::Int64, false),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.source_system.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.customer_id.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                resolution.cluster.iter().map(|c| key_of_cluster[c]),
            )),
        ],
    )
    .expect("columns match");
    let m = &resolution.matches;
    let text_of = |f: &dyn Fn(&Match) -> String| Arc::new(StringArray::from_iter_values(m.iter().map(f))) as ArrayRef;
    let evidence = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("customer_key", DataType::Int64, false),
            Field::new("left_system", DataType::Utf8, false),
            Field::new("left_id", DataType::Utf8, false),
            Field::new("right_system", DataType::Utf8, false),
            Field::new("right_id", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(
                m.iter().map(|x| key_of_cluster[&resolution.cluster[x.left]]),
            )),
            text_of(&|x| records[x.left].source_system.clone()),
            text_of(&|x| records[x.left].customer_id.clone()),
            text_of(&|x| records[x.right].source_system.clone()),
            text_of(&|x| records[x.right].customer_id.clone()),
            text_of(&|x| x.rule.to_string()),
            text_of(&|x| x.value.clone()),
        ],
    )
    .expect("columns match");
    let refresh = CustomerRefresh {
        records: n as u64,
        customers: customer.num_rows() as u64,
        in_both,
        matches: evidence.num_rows() as u64,
    };
    // `core.customer` last: its commit records the inputs, and a refresh that finds them unchanged
    // skips identity, so the other two must be written by then.
    store
        .replace(Layer::Core, "customer_source", vec![source], metadata.clone())
        .await?;
    store
        .replace(Layer::Core, "customer_match", vec![evidence], metadata.clone())
        .await?;
    let mut customer_metadata = metadata;
    customer_metadata.insert(HIGHEST_KEY.into(), highest.into());
    store
        .replace(Layer::Core, "customer", vec![customer], customer_metadata)
        .await?;
    Ok(refresh)
}
