//! A sample company: what a mid-size B2B distributor's CRM and ERP would export, in their own
//! shapes and ids.
//!
//! `generate` simulates every customer's life (see [`customer`]) over a window of years and writes:
//!
//! | file | format | what |
//! |---|---|---|
//! | `crm/accounts.csv` | CSV | CRM accounts (Salesforce-style ids, VAT number, billing e-mail) |
//! | `crm/contacts.csv` | CSV | people at each account |
//! | `crm/activities.ndjson` | NDJSON | calls, e-mails, meetings and chats |
//! | `crm/support_tickets.csv` | CSV | cases with priority, first response and CSAT |
//! | `crm/campaigns.csv`, `crm/campaign_members.csv` | CSV | campaigns, who was reached, who converted |
//! | `crm/leads.csv`, `crm/opportunities.csv` | CSV | the pipeline |
//! | `erp/customers.csv` | CSV, `;`, dates `DD.MM.YYYY` | ERP customers, own numbers, drifting master data |
//! | `erp/products.txt` | fixed width | material master with categories and costs |
//! | `erp/price_lists.csv` | CSV | list prices per year and promotion prices |
//! | `erp/sales_orders.csv`, `erp/sales_order_lines.csv` | CSV | orders and their lines |
//! | `erp/invoices.csv`, `erp/payments.csv`, `erp/returns.csv` | CSV | money back and forth |
//! | `erp/inventory_snapshots.csv.gz` | gzip CSV | stock per warehouse, product and day |
//! | `_truth/*.csv` | CSV | what really happened: identities across systems, churn (for tests) |
//! | `manifest.json` | JSON | parameters and row counts |
//!
//! The same options give the same bytes; memory does not grow with the number of customers.

mod calendar;
mod customer;
pub mod erp_db;
mod export;
mod names;
mod random;
mod world;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use calendar::Day;
use calendar::{civil, parse_iso};
use customer::{Counters, Demand, Scratch, Simulation};
use export::{ExportFile, Format, push_compact_date, push_fixed, push_fixed_right, push_money};
use names::WAREHOUSES;
use random::Rng;
use world::{CATEGORIES, World, stream};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleOptions {
    /// Number of real customers (CRM accounts and ERP customers derive from them).
    pub customers: u64,
    /// Random seed: the same seed and options give the same bytes.
    pub seed: u64,
    /// Length of the observation window in years.
    pub years: u32,
    /// Last day of the window, `YYYY-MM-DD`. Fixed rather than "today" so that output never
    /// depends on when it was generated.
    pub end_date: String,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            customers: 20_000,
            seed: 42,
            years: 3,
            end_date: "2026-09-30".into(),
        }
    }
}

/// One file written by the generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// Data rows (header lines excluded).
    pub rows: u64,
}

/// What a run wrote; also stored as `manifest.json` in the output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The options used.
    pub options: SampleOptions,
    /// First day of the window.
    pub start_date: String,
    /// Every file with its row count.
    pub files: Vec<ExportedFile>,
}

impl Manifest {
    /// Rows written to `path`, if the run wrote that file.
    pub fn rows(&self, path: &str) -> Option<u64> {
        self.files.iter().find(|f| f.path == path).map(|f| f.rows)
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The options cannot describe a company.
    #[error("invalid sample options: {0}")]
    InvalidOptions(String),
    /// Writing an export failed.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Turn an I/O error on `path` into a [`SampleError`] that names the file.
fn write_failed(path: &Path) -> impl FnOnce(io::Error) -> SampleError + '_ {
    move |source| SampleError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Progress of a run, reported to the caller's callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Customers simulated so far.
    pub customers_done: u64,
    /// Customers in the run.
    pub customers_total: u64,
    /// Order lines written so far.
    pub order_lines: u64,
}

/// The files a run writes row by row while it simulates customers.
pub struct Exports {
    accounts: ExportFile,
    contacts: ExportFile,
    activities: ExportFile,
    tickets: ExportFile,
    campaign_members: ExportFile,
    leads: ExportFile,
    opportunities: ExportFile,
    erp_customers: ExportFile,
    orders: ExportFile,
    order_lines: ExportFile,
    invoices: ExportFile,
    payments: ExportFile,
    returns: ExportFile,
    truth_identity: ExportFile,
    truth_lifecycle: ExportFile,
}

const CSV: Format = Format::Delimited(b',');

impl Exports {
    fn create(root: &Path) -> Result<Self, SampleError> {
        let f = |path: &str, format: Format, header: &[&str]| ExportFile::create(root, path, format, header);
        Ok(Self {
            accounts: f(
                "crm/accounts.csv",
                CSV,
                &[
                    "Id",
                    "Name",
                    "Type",
                    "Industry",
                    "Segment__c",
                    "BillingCity",
                    "BillingCountry",
                    "Phone",
                    "Website",
                    "Email__c",
                    "VAT_Number__c",
                    "NumberOfEmployees",
                    "AnnualRevenue",
                    "OwnerName",
                    "CreatedDate",
                ],
            )?,
            contacts: f(
                "crm/contacts.csv",
                CSV,
                &[
                    "Id",
                    "AccountId",
                    "FirstName",
                    "LastName",
                    "Email",
                    "Phone",
                    "Title",
                    "CreatedDate",
                ],
            )?,
            activities: f("crm/activities.ndjson", Format::Ndjson, &[])?,
            tickets: f(
                "crm/support_tickets.csv",
                CSV,
                &[
                    "CaseNumber",
                    "AccountId",
                    "ContactId",
                    "Origin",
                    "Category",
                    "Priority",
                    "Status",
                    "CreatedDate",
                    "ClosedDate",
                    "FirstResponseMinutes",
                    "CSAT",
                ],
            )?,
            campaign_members: f(
                "crm/campaign_members.csv",
                CSV,
                &[
                    "CampaignId",
                    "ContactId",
                    "AccountId",
                    "MemberStatus",
                    "IsControl",
                    "SentDate",
                    "HasOpened",
                    "HasClicked",
                    "HasResponded",
                    "ConvertedOrderNo",
                ],
            )?,
            leads: f(
                "crm/leads.csv",
                CSV,
                &[
                    "Id",
                    "Company",
                    "FirstName",
                    "LastName",
                    "Email",
                    "Phone",
                    "Country",
                    "LeadSource",
                    "Status",
                    "CreatedDate",
                    "IsConverted",
                    "ConvertedDate",
                    "ConvertedAccountId",
                ],
            )?,
            opportunities: f(
                "crm/opportunities.csv",
                CSV,
                &[
                    "Id",
                    "AccountId",
                    "Name",
                    "StageName",
                    "Amount",
                    "Probability",
                    "CloseDate",
                    "CreatedDate",
                    "IsClosed",
                    "IsWon",
                    "Type",
                    "OwnerName",
                ],
            )?,
            erp_customers: f(
                "erp/customers.csv",
                Format::Delimited(b';'),
                &[
                    "customer_no",
                    "name",
                    "postal_code",
                    "city",
                    "country",
                    "vat_id",
                    "email",
                    "phone",
                    "payment_terms",
                    "credit_limit",
                    "sales_rep",
                    "created_on",
                    "blocked",
                ],
            )?,
            orders: f(
                "erp/sales_orders.csv",
                CSV,
                &[
                    "order_no",
                    "customer_no",
                    "order_date",
                    "channel",
                    "sales_rep",
                    "status",
                    "currency",
                    "net_total",
                ],
            )?,
            order_lines: f(
                "erp/sales_order_lines.csv",
                CSV,
                &[
                    "order_no",
                    "line_no",
                    "sku",
                    "quantity",
                    "unit_price",
                    "discount_pct",
                    "net_amount",
                    "unit_cost",
                ],
            )?,
            invoices: f(
                "erp/invoices.csv",
                CSV,
                &[
                    "invoice_no",
                    "order_no",
                    "customer_no",
                    "invoice_date",
                    "due_date",
                    "net_amount",
                    "tax_amount",
                    "gross_amount",
                    "currency",
                ],
            )?,
            payments: f(
                "erp/payments.csv",
                CSV,
                &[
                    "payment_id",
                    "invoice_no",
                    "customer_no",
                    "payment_date",
                    "amount",
                    "method",
                ],
            )?,
            returns: f(
                "erp/returns.csv",
                CSV,
                &[
                    "return_no",
                    "order_no",
                    "line_no",
                    "sku",
                    "quantity",
                    "reason",
                    "return_date",
                    "credit_amount",
                ],
            )?,
            truth_identity: f(
                "_truth/customer_identity.csv",
                CSV,
                &["customer_index", "crm_account_id", "erp_customer_no", "identity_case"],
            )?,
            truth_lifecycle: f(
                "_truth/customer_lifecycle.csv",
                CSV,
                &[
                    "customer_index",
                    "segment",
                    "identity_case",
                    "created_on",
                    "first_active_on",
                    "churned",
                    "churn_date",
                    "decline_start",
                    "satisfaction_x100",
                    "orders_per_year_x100",
                ],
            )?,
        })
    }

    fn finish(self) -> Result<Vec<(String, u64)>, SampleError> {
        [
            self.accounts,
            self.contacts,
            self.activities,
            self.tickets,
            self.campaign_members,
            self.leads,
            self.opportunities,
            self.erp_customers,
            self.orders,
            self.order_lines,
            self.invoices,
            self.payments,
            self.returns,
            self.truth_identity,
            self.truth_lifecycle,
        ]
        .into_iter()
        .map(ExportFile::finish)
        .collect()
    }
}

impl SampleOptions {
    /// Check the options, returning the window's last day. Messages name the option as both the
    /// command line (`--years`) and the configuration (`sample.years`) spell it.
    pub fn validate(&self) -> Result<Day, SampleError> {
        let bad = |msg: String| Err(SampleError::InvalidOptions(msg));
        if self.customers == 0 {
            return bad("customers (--customers, sample.customers) must be at least 1".into());
        }
        if !(1..=20).contains(&self.years) {
            return bad(format!(
                "years (--years, sample.years) must be between 1 and 20, got {}",
                self.years
            ));
        }
        match parse_iso(&self.end_date) {
            Some(day) => Ok(day),
            None => bad(format!(
                "end date (--end-date, sample.end_date) {:?} is not a valid YYYY-MM-DD date",
                self.end_date
            )),
        }
    }
}

/// Generate the sample company into `out`, calling `progress` now and then.
pub fn generate(
    options: &SampleOptions,
    out: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<Manifest, SampleError> {
    let end = options.validate()?;
    fs::create_dir_all(out).map_err(write_failed(out))?;
    let world = World::new(options.seed, end, options.years);
    let days = (world.end - world.start + 1) as usize;

    let mut files = Vec::new();
    files.push(write_products(out, &world)?);
    files.push(write_price_lists(out, &world)?);
    files.push(write_campaigns(out, &world)?);

    let mut exports = Exports::create(out)?;
    let mut counters = Counters::default();
    let mut demand = Demand::new(WAREHOUSES.len(), world.products.len(), days);
    let mut scratch = Scratch::new(days);
    let mut sim = Simulation {
        world: &world,
        seed: options.seed,
        exports: &mut exports,
        counters: &mut counters,
        demand: &mut demand,
        scratch: &mut scratch,
    };
    let mut last_report = Instant::now();
    for index in 0..options.customers {
        sim.customer(index)?;
        if index + 1 == options.customers || (index % 64 == 0 && last_report.elapsed().as_millis() >= 100) {
            last_report = Instant::now();
            progress(Progress {
                customers_done: index + 1,
                customers_total: options.customers,
                order_lines: sim.exports.order_lines.rows(),
            });
        }
    }
    files.extend(exports.finish()?);
    files.push(write_inventory(out, &world, &demand, options.seed)?);

    let mut exported: Vec<ExportedFile> = files
        .into_iter()
        .map(|(path, rows)| ExportedFile { path, rows })
        .collect();
    exported.sort_by(|a, b| a.path.cmp(&b.path));
    let (y, m, d) = civil(world.start);
    let manifest = Manifest {
        options: options.clone(),
        start_date: format!("{y:04}-{m:02}-{d:02}"),
        files: exported,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest always serialises");
    let path = out.join("manifest.json");
    fs::write(&path, json).map_err(write_failed(&path))?;
    Ok(manifest)
}

/// Column widths of `erp/products.txt`, as its header line shows them.
pub const PRODUCT_COLUMNS: [(&str, usize); 9] = [
    ("MATNR", 10),
    ("DESCRIPTION", 40),
    ("CATEGORY", 24),
    ("SUBCATEGORY", 20),
    ("BRAND", 12),
    ("STD_COST", 12),
    ("LIST_PRICE", 12),
    ("CURR", 5),
    ("LAUNCHED", 8),
];

fn write_products(out: &Path, world: &World) -> Result<(String, u64), SampleError> {
    let mut file = ExportFile::create(out, "erp/products.txt", Format::FixedWidth, &[])?;
    let buf = file.raw();
    for (name, width) in PRODUCT_COLUMNS {
        push_fixed(buf, name, width);
    }
    buf.push(b'\n');
    let year = world.year_index(world.start);
    let mut money = Vec::new();
    for product in &world.products {
        let buf = file.raw();
        push_fixed(buf, &product.sku, 10);
        push_fixed(buf, &product.name, 40);
        push_fixed(buf, CATEGORIES[product.category].name, 24);
        push_fixed(buf, product.subcategory, 20);
        push_fixed(buf, product.brand, 12);
        for cents in [product.cost[year], product.price[year]] {
            money.clear();
            push_money(&mut money, cents);
            push_fixed_right(buf, std::str::from_utf8(&money).expect("digits"), 12);
        }
        push_fixed(buf, " EUR", 5);
        push_compact_date(buf, product.launched);
        file.end_row()?;
    }
    file.finish()
}

fn write_price_lists(out: &Path, world: &World) -> Result<(String, u64), SampleError> {
    let mut file = ExportFile::create(
        out,
        "erp/price_lists.csv",
        CSV,
        &["price_list", "sku", "valid_from", "valid_to", "unit_price", "currency"],
    )?;
    let (last_year, ..) = civil(world.end);
    for product in &world.products {
        for (k, price) in product.price.iter().enumerate() {
            let year = world.first_year + k as i32;
            file.text("LIST");
            file.text(&product.sku);
            file.date(calendar::day_of(year, 1, 1));
            if year == last_year {
                file.empty()
            } else {
                file.date(calendar::day_of(year, 12, 31))
            }
            file.money(*price);
            file.text("EUR");
            file.end_row()?;
        }
    }
    // A promotion's price follows the list price of the year: a campaign over New Year has one
    // price-list row per calendar year it covers.
    for campaign in &world.campaigns {
        let (first_year, ..) = civil(campaign.start);
        let (final_year, ..) = civil(campaign.end);
        for year in first_year..=final_year {
            let from = campaign.start.max(calendar::day_of(year, 1, 1));
            let to = campaign.end.min(calendar::day_of(year, 12, 31));
            for &p in &world.by_category[campaign.category] {
                let product = &world.products[p];
                let Some(price) = product.price.get(world.year_index(from)) else {
                    continue;
                };
                file.text(&format!("PROMO-{}", &campaign.id));
                file.text(&product.sku);
                file.date(from);
                file.date(to);
                file.money((price * (10_000 - campaign.discount_bp) + 5_000) / 10_000);
                file.text("EUR");
                file.end_row()?;
            }
        }
    }
    file.finish()
}

fn write_campaigns(out: &Path, world: &World) -> Result<(String, u64), SampleError> {
    let mut file = ExportFile::create(
        out,
        "crm/campaigns.csv",
        CSV,
        &[
            "Id",
            "Name",
            "Type",
            "Status",
            "StartDate",
            "EndDate",
            "BudgetedCost",
            "ActualCost",
            "Offer",
            "TargetCategory",
        ],
    )?;
    for campaign in &world.campaigns {
        file.text(&campaign.id);
        file.text(&campaign.name);
        file.text(campaign.kind);
        file.text(if campaign.end <= world.end {
            "Completed"
        } else {
            "In Progress"
        });
        file.date(campaign.start);
        file.date(campaign.end);
        file.money(campaign.budget);
        file.money(campaign.actual_cost);
        let category = CATEGORIES[campaign.category].name;
        file.text(&format!("{}% off {category}", campaign.discount_bp / 100));
        file.text(category);
        file.end_row()?;
    }
    file.finish()
}

/// Stock per warehouse, product and day under a reorder-point policy fed by the simulated demand:
/// lead times of one to two weeks, reorder levels from the trailing four weeks, and the occasional
/// stock-out when demand outruns them.
fn write_inventory(out: &Path, world: &World, demand: &Demand, seed: u64) -> Result<(String, u64), SampleError> {
    let mut file = ExportFile::create(
        out,
        "erp/inventory_snapshots.csv.gz",
        Format::DelimitedGzip(b','),
        &[
            "snapshot_date",
            "warehouse",
            "sku",
            "on_hand",
            "on_order",
            "reorder_point",
        ],
    )?;
    let days = (world.end - world.start + 1) as usize;
    let mut rng = Rng::new(seed, stream::INVENTORY, 0);
    struct Stock {
        on_hand: i64,
        arrivals: Vec<(usize, i64)>,
        reorder_point: i64,
    }
    let mut stocks: Vec<Stock> = Vec::with_capacity(WAREHOUSES.len() * world.products.len());
    for w in 0..WAREHOUSES.len() {
        for p in 0..world.products.len() {
            let series = demand.series(w, p);
            let first_month: i64 = series.iter().take(28).map(|&u| u as i64).sum();
            stocks.push(Stock {
                on_hand: first_month + 5,
                arrivals: Vec::new(),
                reorder_point: 0,
            });
        }
    }
    for day in 0..days {
        for w in 0..WAREHOUSES.len() {
            for (p, product) in world.products.iter().enumerate() {
                let stock = &mut stocks[w * world.products.len() + p];
                let series = demand.series(w, p);
                stock.arrivals.retain(|&(due, qty)| {
                    if due == day {
                        stock.on_hand += qty;
                    }
                    due > day
                });
                stock.on_hand = (stock.on_hand - series[day] as i64).max(0);
                // The trailing four weeks; in the first four weeks, the first four weeks.
                let from = day.saturating_sub(27).min(days.saturating_sub(28));
                let window = &series[from..(from + 28).min(days)];
                let daily = window.iter().map(|&u| u as f64).sum::<f64>() / window.len() as f64;
                let lead = 7 + rng.below(8) as usize;
                stock.reorder_point = (daily * (lead as f64 + 5.0)).ceil() as i64;
                let on_order: i64 = stock.arrivals.iter().map(|a| a.1).sum();
                if stock.on_hand + on_order <= stock.reorder_point && daily > 0.0 {
                    let order_up_to = (daily * 45.0).ceil() as i64;
                    stock
                        .arrivals
                        .push((day + lead, (order_up_to - stock.on_hand - on_order).max(1)));
                }
                let snapshot = world.start + day as Day;
                if product.launched > snapshot {
                    continue;
                }
                file.date(snapshot);
                file.text(WAREHOUSES[w]);
                file.text(&product.sku);
                file.int(stock.on_hand);
                file.int(stock.arrivals.iter().map(|a| a.1).sum());
                file.int(stock.reorder_point);
                file.end_row()?;
            }
        }
    }
    file.finish()
}
