//! One customer's whole life: who they are in the CRM and in the ERP, when they order and what,
//! how they pay, return, complain, answer campaigns and, for some, decline and leave.
//!
//! Each customer draws from its own random stream and writes its rows as it goes, so memory stays
//! flat however many customers there are. The behaviour carries signals a model should find:
//! - churners order less often and open more, angrier tickets in the months before they stop;
//! - orders follow the week and the year, categories their own seasons, and demand grows;
//! - promotions cut prices and lift quantities by the category's elasticity, campaigns lift the
//!   orders of the customers they reach, and some products are bought together.

use super::calendar::{Day, weekday};
use super::export::{push_int, push_json_string, push_timestamp};
use super::names::{
    COMPANY_HEADS, COMPANY_TRADES, COUNTRIES, Country, FIRST_NAMES, LAST_NAMES, TITLES, TRADE_INDUSTRY, slug,
};
use super::random::{Rng, mix64};
use super::world::{CATEGORIES, CHANNELS, NCAT, WEEKLY_B2B, WEEKLY_WEB, World, base62, stream};
use super::{Exports, SampleError};

/// Sequence numbers shared by all customers (ERP numbers are sequential, as ERPs hand them out).
#[derive(Debug, Default)]
pub struct Counters {
    contact: u64,
    activity: u64,
    case: u64,
    lead: u64,
    opportunity: u64,
    erp_customer: u64,
    order: u64,
    invoice: u64,
    payment: u64,
    sales_return: u64,
}

/// Units sold per warehouse, product and day, for the inventory simulation.
pub struct Demand {
    days: usize,
    products: usize,
    /// Units, indexed `(warehouse * products + product) * days + day`.
    pub units: Vec<u32>,
}

impl Demand {
    /// An empty tally for the window.
    pub fn new(warehouses: usize, products: usize, days: usize) -> Self {
        Self {
            days,
            products,
            units: vec![0; warehouses * products * days],
        }
    }

    #[inline]
    fn add(&mut self, warehouse: usize, product: usize, day: usize, units: u32) {
        let i = (warehouse * self.products + product) * self.days + day;
        self.units[i] = self.units[i].saturating_add(units);
    }

    /// Units of one product shipped from one warehouse, day by day.
    pub fn series(&self, warehouse: usize, product: usize) -> &[u32] {
        let at = (warehouse * self.products + product) * self.days;
        &self.units[at..at + self.days]
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Segment {
    Smb,
    MidMarket,
    Enterprise,
}

struct SegmentTraits {
    name: &'static str,
    orders_per_year: f64,
    lines_per_order: f64,
    quantity: f64,
    contacts: f64,
    annual_churn: f64,
    tickets_per_year: f64,
    interactions_per_year: f64,
    opportunities_per_year: f64,
    discount_bp: (i64, i64),
    deal_size: f64,
    employees: (u64, u64),
}

impl Segment {
    fn traits(self) -> &'static SegmentTraits {
        const SMB: SegmentTraits = SegmentTraits {
            name: "SMB",
            orders_per_year: 17.0,
            lines_per_order: 2.6,
            quantity: 1.0,
            contacts: 1.6,
            annual_churn: 0.22,
            tickets_per_year: 0.9,
            interactions_per_year: 4.0,
            opportunities_per_year: 0.25,
            discount_bp: (0, 300),
            deal_size: 3_000.0,
            employees: (2, 49),
        };
        const MM: SegmentTraits = SegmentTraits {
            name: "Mid-Market",
            orders_per_year: 40.0,
            lines_per_order: 4.0,
            quantity: 2.5,
            contacts: 3.0,
            annual_churn: 0.13,
            tickets_per_year: 2.2,
            interactions_per_year: 10.0,
            opportunities_per_year: 0.8,
            discount_bp: (300, 800),
            deal_size: 15_000.0,
            employees: (50, 499),
        };
        const ENT: SegmentTraits = SegmentTraits {
            name: "Enterprise",
            orders_per_year: 90.0,
            lines_per_order: 6.5,
            quantity: 6.0,
            contacts: 6.0,
            annual_churn: 0.07,
            tickets_per_year: 5.0,
            interactions_per_year: 26.0,
            opportunities_per_year: 2.0,
            discount_bp: (800, 1500),
            deal_size: 80_000.0,
            employees: (500, 20_000),
        };
        match self {
            Segment::Smb => &SMB,
            Segment::MidMarket => &MM,
            Segment::Enterprise => &ENT,
        }
    }
}

/// How a customer appears across the two systems; the matcher has to undo these.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// Same tax id in both (formatting may differ).
    ExactTax,
    /// The ERP's tax id has a typo; the e-mail still matches.
    TaxTypo,
    /// One side has no tax id; the e-mail matches.
    TaxMissing,
    /// No tax id in the ERP and another e-mail; only the phone number matches.
    PhoneOnly,
    /// Nothing matches: a real customer that no rule can join.
    Unmatchable,
    /// Only in the CRM (a prospect account that never ordered).
    CrmOnly,
    /// Only in the ERP (ordered without ever being in the CRM).
    ErpOnly,
}

impl Identity {
    fn name(self) -> &'static str {
        match self {
            Identity::ExactTax => "exact_tax",
            Identity::TaxTypo => "tax_typo",
            Identity::TaxMissing => "tax_missing",
            Identity::PhoneOnly => "phone_only",
            Identity::Unmatchable => "unmatchable",
            Identity::CrmOnly => "crm_only",
            Identity::ErpOnly => "erp_only",
        }
    }
    fn in_crm(self) -> bool {
        self != Identity::ErpOnly
    }
    fn in_erp(self) -> bool {
        self != Identity::CrmOnly
    }
}

struct Contact {
    id: String,
    created: Day,
    first: &'static str,
    last: &'static str,
    email: String,
    title: &'static str,
}

struct Membership {
    campaign: usize,
    contact: usize,
    control: bool,
    sent: Day,
    opened: bool,
    clicked: bool,
    responded: bool,
    converted: Option<u64>,
}

impl Membership {
    /// The days of the window on which the campaign reaches this member: from the send to the
    /// campaign's end, never for the control group.
    fn reached_days(&self, world: &World) -> Option<std::ops::RangeInclusive<Day>> {
        let end = world.campaigns[self.campaign].end.min(world.end);
        (!self.control).then(|| self.sent.max(world.start)..=end)
    }

    fn reached_on(&self, world: &World, day: Day) -> bool {
        self.reached_days(world).is_some_and(|days| days.contains(&day))
    }
}

/// A contact who already worked at the customer on `day` (the first one always did).
fn contact_on(rng: &mut Rng, contacts: &[Contact], day: Day) -> usize {
    let known = contacts.partition_point(|c| c.created <= day).max(1);
    rng.below(known as u64) as usize
}

struct LineDraft {
    product: usize,
    quantity: i64,
    unit_price: i64,
    discount_bp: i64,
    net: i64,
    unit_cost: i64,
}

/// Scratch space reused from one customer to the next, so the hot loop does not allocate.
pub struct Scratch {
    rate_boost: Vec<f64>,
    lines: Vec<LineDraft>,
    orders: Vec<(Day, u64, u16)>,
}

impl Scratch {
    /// Scratch for a window of `days` days.
    pub fn new(days: usize) -> Self {
        Self {
            rate_boost: vec![1.0; days],
            lines: Vec::new(),
            orders: Vec::new(),
        }
    }
}

/// Everything needed to simulate customers, borrowed for the length of a run.
pub struct Simulation<'a> {
    /// The market.
    pub world: &'a World,
    /// The run's seed.
    pub seed: u64,
    /// Files being written.
    pub exports: &'a mut Exports,
    /// ERP and CRM sequence numbers.
    pub counters: &'a mut Counters,
    /// Units sold, for inventory.
    pub demand: &'a mut Demand,
    /// Reused buffers.
    pub scratch: &'a mut Scratch,
}

fn crm_id(seed: u64, prefix: &str, kind: u64, n: u64) -> String {
    // A bijective scramble of a sequence number: unique like the sequence, random-looking like a
    // CRM's record id.
    format!(
        "{prefix}{}",
        base62(mix64(n ^ mix64(seed ^ kind.wrapping_mul(stream::IDS))), 12)
    )
}

fn weekly_of(channel: usize) -> &'static [f64; 7] {
    if CHANNELS[channel] == "Web" {
        &WEEKLY_WEB
    } else {
        &WEEKLY_B2B
    }
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// VAT rate in percent for a country.
fn vat_rate(code: &str) -> i64 {
    match code {
        "DE" => 19,
        "AT" | "FR" | "GB" => 20,
        "CH" => 8,
        "NL" | "BE" | "ES" => 21,
        "IT" => 22,
        "IE" | "PL" => 23,
        _ => 25,
    }
}

impl Simulation<'_> {
    /// Simulate customer `index` and write every row that concerns it.
    pub fn customer(&mut self, index: u64) -> Result<(), SampleError> {
        let world = self.world;
        let mut rng = Rng::new(self.seed, stream::CUSTOMER, index);

        // Who they are.
        let country_index = rng.cumulative(&world.country_weights);
        let country: &Country = &COUNTRIES[country_index];
        let (city, area) = rng.pick(country.cities);
        let segment = match rng.f64() {
            x if x < 0.70 => Segment::Smb,
            x if x < 0.95 => Segment::MidMarket,
            _ => Segment::Enterprise,
        };
        let traits = segment.traits();
        let identity = match rng.f64() {
            x if x < 0.04 => Identity::CrmOnly,
            x if x < 0.08 => Identity::ErpOnly,
            x if x < 0.08 + 0.92 * 0.850 => Identity::ExactTax,
            x if x < 0.08 + 0.92 * 0.910 => Identity::TaxTypo,
            x if x < 0.08 + 0.92 * 0.960 => Identity::TaxMissing,
            x if x < 0.08 + 0.92 * 0.995 => Identity::PhoneOnly,
            _ => Identity::Unmatchable,
        };
        let erp_duplicate = identity.in_erp() && rng.chance(0.02);
        let trade = rng.below(COMPANY_TRADES.len() as u64) as usize;
        let legal = rng.pick(country.legal);
        let head = if rng.chance(0.4) {
            rng.pick(LAST_NAMES)
        } else {
            rng.pick(COMPANY_HEADS)
        };
        let base_name = format!("{head} {}", COMPANY_TRADES[trade]);
        let name = format!("{base_name} {legal}");
        let mut domain = String::new();
        slug(&base_name, &mut domain);
        if rng.chance(0.3) {
            push_digits(&mut domain, rng.between(2, 99));
        }
        domain.push('.');
        domain.push_str(country.tld);
        let tax_digits = rng.between(100_000_000, 999_999_999);
        let tax_id = format!("{}{tax_digits}", country.code);
        let subscriber = rng.between(2_000_000, 9_999_999);
        let phone = format!("+{} {area} {subscriber}", country.dial);
        let satisfaction = rng.normal();
        let employees = rng.between(traits.employees.0 as i64, traits.employees.1 as i64);

        // When they arrive: 40% were customers before the window; arrivals then grow over time.
        let window = (world.end - world.start) as f64;
        let created = if rng.chance(0.4) {
            world.start - 1 - rng.below(5 * 365) as Day
        } else {
            world.start + (rng.f64().sqrt() * window) as Day
        };
        let first_active = if created < world.start {
            world.start
        } else {
            (created + rng.below(15) as Day).min(world.end)
        };

        // Whether and when they leave: unhappy customers leave sooner.
        let annual = (traits.annual_churn * libm::exp(-0.6 * satisfaction)).min(0.9);
        let hazard = -libm::log(1.0 - annual) / 365.25;
        let mut churn = first_active + rng.exponential(hazard) as Day;
        churn = churn.max(first_active + 150);
        let churn = (identity.in_erp() && churn <= world.end).then_some(churn);
        let decline_start = churn
            .map(|c| c - 90 - rng.below(91) as Day)
            .map(|d| d.max(first_active));
        let active_until = churn.unwrap_or(world.end + 1);

        let order_rate = rng.gamma(3.0, traits.orders_per_year / 3.0) / 365.25;
        let channel = match segment {
            Segment::Enterprise => {
                if rng.chance(0.6) {
                    2
                } else {
                    rng.weighted(&[0.3, 0.4, 0.0, 0.3, 0.0])
                }
            }
            _ => rng.weighted(&[0.45, 0.25, 0.08, 0.12, 0.10]),
        };
        let weekly = weekly_of(channel);
        let web = CHANNELS[channel] == "Web";
        let rep = &world.reps[rng.pick(&world.reps_by_country[country_index])];
        let mut preference = [0.0; NCAT];
        for _ in 0..3 {
            preference[rng.below(NCAT as u64) as usize] += rng.gamma(2.0, 1.0);
        }
        for p in &mut preference {
            *p += 0.15;
        }
        let discount_bp = rng.between(traits.discount_bp.0, traits.discount_bp.1);
        let payment_terms = rng.pick(&[14, 30, 30, 30, 45, 60]) as Day;
        let late_payer = rng.chance((0.15 - 0.08 * satisfaction).clamp(0.02, 0.5));

        // The people at the customer.
        let n_contacts = 1 + rng.poisson(traits.contacts - 1.0).min(15) as usize;
        let mut contacts: Vec<Contact> = (0..n_contacts)
            .map(|k| {
                self.counters.contact += 1;
                let first = rng.pick(FIRST_NAMES);
                let last = rng.pick(LAST_NAMES);
                let mut email = String::new();
                slug(first, &mut email);
                email.push('.');
                slug(last, &mut email);
                email.push('@');
                email.push_str(&domain);
                // The first contact comes with the account; others join later, while it is a customer.
                let joined = if k == 0 {
                    created
                } else {
                    (created + rng.below(400) as Day)
                        .min(world.end)
                        .min(active_until - 1)
                        .max(created)
                };
                Contact {
                    id: crm_id(self.seed, "003", 3, self.counters.contact),
                    created: joined,
                    first,
                    last,
                    email,
                    title: rng.pick(TITLES),
                }
            })
            .collect();
        // In joining order, so that `contact_on` can find who was there on a given day.
        contacts.sort_by_key(|c| c.created);
        let billing_email = contacts[0].email.clone();

        let account_id = identity.in_crm().then(|| crm_id(self.seed, "001", 1, index));
        let erp_numbers: Vec<u64> = if identity.in_erp() {
            (0..1 + erp_duplicate as usize)
                .map(|_| {
                    self.counters.erp_customer += 1;
                    100_000 + self.counters.erp_customer
                })
                .collect()
        } else {
            Vec::new()
        };
        let duplicate_from = first_active + rng.below(((active_until - first_active).max(1)) as u64) as Day;

        // CRM account and contacts.
        if let Some(account_id) = &account_id {
            let crm_tax = match identity {
                Identity::TaxMissing if rng.chance(0.5) => "",
                Identity::ErpOnly | Identity::CrmOnly if rng.chance(0.2) => "",
                _ => tax_id.as_str(),
            };
            let t = &mut self.exports.accounts;
            t.text(account_id);
            t.text(&name);
            t.text(if identity.in_erp() { "Customer" } else { "Prospect" });
            t.text(TRADE_INDUSTRY[trade]);
            t.text(traits.name);
            t.text(city);
            t.text(country.name);
            t.text(&phone);
            t.text(&format!("www.{domain}"));
            t.text(&billing_email);
            t.text(crm_tax);
            t.int(employees);
            t.money(employees * rng.between(60_000, 250_000) * 100);
            t.text(&rep.name);
            t.timestamp(created, rng.between(28_800, 64_800) as u32);
            t.end_row()?;
            for contact in &contacts {
                let t = &mut self.exports.contacts;
                t.text(&contact.id);
                t.text(account_id);
                t.text(contact.first);
                t.text(contact.last);
                t.text(&contact.email);
                t.text(&format!(
                    "+{} {area} {}",
                    country.dial,
                    rng.between(2_000_000, 9_999_999)
                ));
                t.text(contact.title);
                t.timestamp(contact.created, rng.between(28_800, 64_800) as u32);
                t.end_row()?;
            }
        }

        // ERP customer records, with the drift real master data has.
        for (k, &number) in erp_numbers.iter().enumerate() {
            let erp_tax = match identity {
                Identity::TaxTypo => typo(&tax_id, &mut rng),
                Identity::TaxMissing | Identity::PhoneOnly | Identity::Unmatchable => String::new(),
                Identity::ExactTax | Identity::ErpOnly if k > 0 || rng.chance(0.3) => reformat_tax(&tax_id, &mut rng),
                _ => tax_id.clone(),
            };
            let erp_email = match identity {
                Identity::PhoneOnly | Identity::Unmatchable => format!("accounts@{domain}"),
                Identity::ExactTax | Identity::ErpOnly if rng.chance(0.4) => format!("accounts@{domain}"),
                _ if rng.chance(0.3) => vary_case(&billing_email),
                _ => billing_email.clone(),
            };
            let erp_phone = if identity == Identity::Unmatchable {
                format!("0{area} {}", rng.between(2_000_000, 9_999_999))
            } else {
                match rng.below(4) {
                    0 => format!("0{area} {subscriber}"),
                    1 => format!("0{area}/{subscriber}"),
                    2 => format!("00{} {area}-{subscriber}", country.dial),
                    _ => format!("+{}{area}{subscriber}", country.dial),
                }
            };
            let erp_name = match rng.below(5) {
                0 => name.to_uppercase(),
                1 => base_name.clone(),
                _ => name.clone(),
            };
            let t = &mut self.exports.erp_customers;
            t.int(number as i64);
            t.text(&erp_name);
            t.int(rng.between(10_000, 99_999));
            t.text(city);
            t.text(country.code);
            t.text(&erp_tax);
            t.text(&erp_email);
            t.text(&erp_phone);
            t.text(&format!("NET{payment_terms}"));
            t.money(rng.between(20, 400) * 100_000 * (1 + (segment == Segment::Enterprise) as i64 * 9));
            t.text(&rep.code);
            t.date_dmy(if k == 0 {
                created.max(first_active - 400)
            } else {
                duplicate_from
            });
            t.text("");
            t.end_row()?;
        }

        // Truth for the tests: which records are the same customer, and who churned.
        {
            let rows = erp_numbers.len().max(1);
            for k in 0..rows {
                let t = &mut self.exports.truth_identity;
                t.int(index as i64);
                t.text(account_id.as_deref().unwrap_or(""));
                match erp_numbers.get(k) {
                    Some(n) => t.int(*n as i64),
                    None => t.empty(),
                }
                t.text(identity.name());
                t.end_row()?;
            }
            let t = &mut self.exports.truth_lifecycle;
            t.int(index as i64);
            t.text(traits.name);
            t.text(identity.name());
            t.date(created);
            t.date(first_active);
            t.text(bool_text(churn.is_some()));
            match churn {
                Some(c) => t.date(c),
                None => t.empty(),
            }
            match decline_start {
                Some(d) => t.date(d),
                None => t.empty(),
            }
            t.int((satisfaction * 100.0).round() as i64);
            t.int((order_rate * 365.25 * 100.0).round() as i64);
            t.end_row()?;
        }

        // Campaign memberships decide part of the ordering behaviour, so they come first.
        let mut memberships: Vec<Membership> = Vec::new();
        if identity.in_crm() {
            let p_member = if segment == Segment::Enterprise { 0.6 } else { 0.35 };
            for (c, campaign) in world.campaigns.iter().enumerate() {
                let reachable =
                    campaign.start >= created && campaign.start < active_until && campaign.start <= world.end;
                if !reachable || !rng.chance(p_member) {
                    continue;
                }
                let declining = decline_start.is_some_and(|d| campaign.start >= d);
                let control = rng.chance(0.1);
                let p_open = (0.30 + 0.08 * satisfaction).clamp(0.05, 0.8) * if declining { 0.5 } else { 1.0 };
                let opened = !control && rng.chance(p_open);
                let clicked = opened && rng.chance(0.35);
                let responded = clicked && rng.chance(0.45);
                memberships.push(Membership {
                    campaign: c,
                    contact: contact_on(&mut rng, &contacts, campaign.start),
                    control,
                    sent: (campaign.start + rng.below(3) as Day)
                        .min(world.end)
                        .min(active_until - 1),
                    opened,
                    clicked,
                    responded,
                    converted: None,
                });
            }
        }
        for m in &memberships {
            let lift = if m.responded { 1.5 } else { 1.1 };
            for day in m.reached_days(world).into_iter().flatten() {
                self.scratch.rate_boost[(day - world.start) as usize] *= lift;
            }
        }

        // Day by day: orders, tickets, interactions.
        let decline_progress = |day: Day| match (decline_start, churn) {
            (Some(d), Some(c)) if day >= d => (day - d) as f64 / (c - d).max(1) as f64,
            _ => 0.0,
        };
        self.scratch.orders.clear();
        let ticket_rate = traits.tickets_per_year / 365.25 * (1.0 - 0.25 * satisfaction).max(0.3);
        let interaction_rate = traits.interactions_per_year / 365.25;
        let life_start = created.max(world.start);
        let life_end = if identity.in_erp() { active_until } else { world.end + 1 };
        for day in life_start..life_end {
            // One draw a day decides all three: this loop runs for every customer and day.
            let [order_draw, ticket_draw, interaction_draw] = rng.three_uniforms();
            let decline = decline_progress(day);
            if identity.in_erp() && day >= first_active {
                let lambda = order_rate
                    * world.order_intensity(day, web)
                    * (1.0 - 0.8 * decline)
                    * self.scratch.rate_boost[(day - world.start) as usize];
                if order_draw < lambda {
                    let erp_number = if erp_numbers.len() > 1 && day >= duplicate_from {
                        erp_numbers[1]
                    } else {
                        erp_numbers[0]
                    };
                    let ctx = OrderContext {
                        erp_number,
                        country,
                        channel,
                        rep_code: &rep.code,
                        preference: &preference,
                        memberships: &memberships,
                        discount_bp,
                        lines_per_order: traits.lines_per_order,
                        quantity: traits.quantity,
                        payment_terms,
                        late_payer,
                        decline,
                        churn,
                    };
                    self.order(&mut rng, day, &ctx)?;
                }
            }
            if let Some(account_id) = &account_id {
                if day >= first_active && ticket_draw < ticket_rate * (1.0 + 3.0 * decline) * weekly[weekday(day)] {
                    self.ticket(&mut rng, day, account_id, &contacts, satisfaction, decline, late_payer)?;
                }
                let inbound_bias = 0.3 + 0.3 * decline;
                if interaction_draw < interaction_rate * (1.0 + decline) * WEEKLY_B2B[weekday(day)] {
                    self.interaction(
                        &mut rng,
                        day,
                        account_id,
                        &contacts,
                        segment,
                        &rep.name,
                        inbound_bias,
                        satisfaction,
                        decline,
                        &memberships,
                    )?;
                }
            }
        }
        // After they leave, the account owner tries to win them back for a while.
        if let (Some(account_id), Some(c)) = (&account_id, churn) {
            for day in c..(c + 60).min(world.end + 1) {
                if rng.f64() < 2.0 * interaction_rate * WEEKLY_B2B[weekday(day)] {
                    self.interaction(
                        &mut rng,
                        day,
                        account_id,
                        &contacts,
                        segment,
                        &rep.name,
                        0.05,
                        satisfaction,
                        1.0,
                        &memberships,
                    )?;
                }
            }
        }
        for m in &memberships {
            for day in m.reached_days(world).into_iter().flatten() {
                self.scratch.rate_boost[(day - world.start) as usize] = 1.0;
            }
        }

        // Campaign members, now that conversions are known.
        if let Some(account_id) = &account_id {
            for m in &mut memberships {
                let campaign = &world.campaigns[m.campaign];
                if m.responded {
                    m.converted = self
                        .scratch
                        .orders
                        .iter()
                        .find(|(day, _, mask)| {
                            *day >= m.sent && *day <= campaign.end + 14 && mask & (1 << campaign.category) != 0
                        })
                        .map(|o| o.1);
                }
                let t = &mut self.exports.campaign_members;
                t.text(&campaign.id);
                t.text(&contacts[m.contact].id);
                t.text(account_id);
                t.text(match (m.control, m.responded, m.clicked, m.opened) {
                    (true, ..) => "Control",
                    (_, true, ..) => "Responded",
                    (_, _, true, _) => "Clicked",
                    (_, _, _, true) => "Opened",
                    _ => "Sent",
                });
                t.text(bool_text(m.control));
                if m.control {
                    t.empty()
                } else {
                    t.date(m.sent)
                }
                t.text(bool_text(m.opened));
                t.text(bool_text(m.clicked));
                t.text(bool_text(m.responded));
                match m.converted {
                    Some(order) => t.text(&order_number(order)),
                    None => t.empty(),
                }
                t.end_row()?;
            }
        }

        // Leads and opportunities.
        if let Some(account_id) = &account_id {
            if created >= world.start - 90 {
                let lead_created = created - 10 - rng.below(80) as Day;
                let source = rng.pick(&["Web", "Trade Show", "Referral", "Partner", "Cold Call", "Campaign"]);
                let contact = &contacts[0];
                self.lead(
                    &mut rng,
                    &name,
                    contact.first,
                    contact.last,
                    &contact.email,
                    &phone,
                    country.name,
                    source,
                    lead_created,
                    Some((created, account_id)),
                )?;
            }
            if rng.chance(0.6) {
                // A prospect company that never became a customer.
                let head = rng.pick(COMPANY_HEADS);
                let company = format!("{head} {} {}", rng.pick(COMPANY_TRADES), rng.pick(country.legal));
                let (first, last) = (rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
                let mut email = String::new();
                slug(first, &mut email);
                email.push('@');
                slug(&company, &mut email);
                email.push('.');
                email.push_str(country.tld);
                let lead_phone = format!("+{} {area} {}", country.dial, rng.between(2_000_000, 9_999_999));
                let source = rng.pick(&["Web", "Trade Show", "Referral", "Partner", "Cold Call", "Campaign"]);
                let day = world.start + rng.below(window as u64) as Day;
                self.lead(
                    &mut rng,
                    &company,
                    first,
                    last,
                    &email,
                    &lead_phone,
                    country.name,
                    source,
                    day,
                    None,
                )?;
            }
            let from = created.max(world.start - 365);
            let mut day = from + rng.exponential(traits.opportunities_per_year / 365.25) as Day;
            while day < life_end.min(world.end + 1) {
                let decline = decline_progress(day);
                let win = if identity.in_erp() {
                    (0.5 + 0.1 * satisfaction - 0.35 * decline).clamp(0.05, 0.9)
                } else {
                    0.04
                };
                self.opportunity(&mut rng, day, account_id, &base_name, traits.deal_size, win, &rep.name)?;
                day += 1 + rng.exponential(traits.opportunities_per_year / 365.25) as Day;
            }
        }
        Ok(())
    }

    fn order(&mut self, rng: &mut Rng, day: Day, ctx: &OrderContext<'_>) -> Result<(), SampleError> {
        let world = self.world;
        self.counters.order += 1;
        let order_no = self.counters.order;
        let year = world.year_index(day);
        let day_index = (day - world.start) as usize;

        // Category choice follows the customer's habits, the season, campaigns that reached them
        // and promotions running for everybody.
        let mut cumulative = [0.0; NCAT];
        let mut acc = 0.0;
        for (c, slot) in cumulative.iter_mut().enumerate() {
            let mut w = ctx.preference[c] * world.season(day, c);
            for m in ctx.memberships {
                if world.campaigns[m.campaign].category == c && m.reached_on(world, day) {
                    w *= if m.responded { 4.0 } else { 1.4 };
                }
            }
            if let Some(promo) = world.promotion(day, c) {
                w *= 1.0 + CATEGORIES[c].elasticity * promo.discount_bp as f64 / 10_000.0;
            }
            acc += w;
            *slot = acc;
        }

        let lines = &mut self.scratch.lines;
        lines.clear();
        let n_lines = 1 + rng.poisson(ctx.lines_per_order - 1.0).min(39);
        let mut mask = 0u16;
        let mut attempts = 0;
        while lines.len() < n_lines as usize && attempts < 3 * n_lines {
            attempts += 1;
            let c = rng.cumulative(&cumulative);
            let Some(p) = world.draw_product(rng, c, day) else {
                continue;
            };
            let add = |p: usize, rng: &mut Rng, lines: &mut Vec<LineDraft>| {
                if lines.iter().any(|l| l.product == p) {
                    return;
                }
                let product = &world.products[p];
                let category = &CATEGORIES[product.category];
                let promo_bp = world.promotion(day, product.category).map_or(0, |c| c.discount_bp);
                let lift = if promo_bp == 0 {
                    1.0
                } else {
                    libm::pow(1.0 - promo_bp as f64 / 10_000.0, -category.elasticity)
                };
                let quantity = (category.quantity * ctx.quantity * lift * rng.lognormal(-0.18, 0.6))
                    .round()
                    .max(1.0) as i64;
                let unit_price = product.price[year];
                let discount_bp = ctx.discount_bp + promo_bp;
                let net = (quantity * unit_price * (10_000 - discount_bp) + 5_000) / 10_000;
                lines.push(LineDraft {
                    product: p,
                    quantity,
                    unit_price,
                    discount_bp,
                    net,
                    unit_cost: product.cost[year],
                });
            };
            add(p, rng, lines);
            mask |= 1 << c;
            if let Some(partner) = world.products[p].partner
                && world.products[partner].launched <= day
                && rng.chance(0.4)
            {
                add(partner, rng, lines);
                mask |= 1 << world.products[partner].category;
            }
        }
        if lines.is_empty() {
            self.counters.order -= 1;
            return Ok(());
        }

        let status = if rng.chance(0.015) {
            "CANCELLED"
        } else if day > world.end - 4 {
            "OPEN"
        } else {
            "COMPLETED"
        };
        let channel = if rng.chance(0.85) {
            ctx.channel
        } else {
            rng.below(CHANNELS.len() as u64) as usize
        };
        let total: i64 = lines.iter().map(|l| l.net).sum();
        let order_id = order_number(order_no);
        let t = &mut self.exports.orders;
        t.text(&order_id);
        t.int(ctx.erp_number as i64);
        t.date(day);
        t.text(CHANNELS[channel]);
        if matches!(CHANNELS[channel], "Phone" | "Field Sales") {
            t.text(ctx.rep_code)
        } else {
            t.empty()
        }
        t.text(status);
        t.text("EUR");
        t.money(total);
        t.end_row()?;

        let warehouse = ctx.country.warehouse;
        for (i, line) in lines.iter().enumerate() {
            let product = &world.products[line.product];
            let t = &mut self.exports.order_lines;
            t.text(&order_id);
            t.int(10 * (i as i64 + 1));
            t.text(&product.sku);
            t.int(line.quantity);
            t.money(line.unit_price);
            t.money(line.discount_bp);
            t.money(line.net);
            t.money(line.unit_cost);
            t.end_row()?;
            if status == "CANCELLED" {
                continue;
            }
            self.demand
                .add(warehouse, line.product, day_index, line.quantity as u32);
            let category = &CATEGORIES[product.category];
            // Only delivered orders come back; open ones have not shipped yet.
            if status == "COMPLETED" && rng.chance(category.return_rate * (1.0 + 1.5 * ctx.decline)) {
                let returned_on = day + 3 + rng.below(28) as Day;
                if returned_on <= world.end {
                    self.counters.sales_return += 1;
                    let quantity = 1 + rng.below(line.quantity as u64) as i64;
                    let t = &mut self.exports.returns;
                    t.text(&format!("RMA-{:08}", self.counters.sales_return));
                    t.text(&order_id);
                    t.int(10 * (i as i64 + 1));
                    t.text(&product.sku);
                    t.int(quantity);
                    t.text(rng.pick(&[
                        "Damaged in transit",
                        "Wrong item",
                        "Not as described",
                        "No longer needed",
                        "Defective",
                        "Ordered by mistake",
                    ]));
                    t.date(returned_on);
                    t.money(line.net * quantity / line.quantity);
                    t.end_row()?;
                }
            }
        }
        if status != "CANCELLED" {
            self.scratch.orders.push((day, order_no, mask));
        }

        if status == "COMPLETED" {
            self.invoice(rng, day, &order_id, total, ctx)?;
        }
        Ok(())
    }

    fn invoice(
        &mut self,
        rng: &mut Rng,
        day: Day,
        order_id: &str,
        net: i64,
        ctx: &OrderContext<'_>,
    ) -> Result<(), SampleError> {
        let end = self.world.end;
        self.counters.invoice += 1;
        let invoice_no = format!("INV-{:09}", self.counters.invoice);
        let invoiced = day + rng.below(3) as Day;
        let due = invoiced + ctx.payment_terms;
        let tax = (net * vat_rate(ctx.country.code) + 50) / 100;
        let gross = net + tax;
        let t = &mut self.exports.invoices;
        t.text(&invoice_no);
        t.text(order_id);
        t.int(ctx.erp_number as i64);
        t.date(invoiced);
        t.date(due);
        t.money(net);
        t.money(tax);
        t.money(gross);
        t.text("EUR");
        t.end_row()?;

        // Late payers pay weeks late, and everybody pays later once they are on their way out.
        let late = ctx.late_payer || rng.chance(0.08 + 0.3 * ctx.decline);
        let paid = if late {
            due + 1 + rng.exponential(1.0 / (12.0 + 25.0 * ctx.decline)) as Day
        } else {
            (due - rng.below(12) as Day).max(invoiced)
        };
        let bad_debt = ctx.churn.is_some_and(|c| invoiced > c - 60) && rng.chance(0.15);
        if bad_debt || paid > end {
            return Ok(());
        }
        let method = rng.pick(&[
            "Bank Transfer",
            "Bank Transfer",
            "Bank Transfer",
            "Bank Transfer",
            "Direct Debit",
            "Card",
        ]);
        let parts: &[(i64, Day)] = if rng.chance(0.03) {
            &[(60, 0), (40, 10 + rng.below(20) as Day)]
        } else {
            &[(100, 0)]
        };
        let mut remaining = gross;
        for (k, (share, delay)) in parts.iter().enumerate() {
            let amount = if k + 1 == parts.len() {
                remaining
            } else {
                gross * share / 100
            };
            remaining -= amount;
            if paid + delay > end {
                break;
            }
            self.counters.payment += 1;
            let t = &mut self.exports.payments;
            t.text(&format!("PAY-{:09}", self.counters.payment));
            t.text(&invoice_no);
            t.int(ctx.erp_number as i64);
            t.date(paid + delay);
            t.money(amount);
            t.text(method);
            t.end_row()?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ticket(
        &mut self,
        rng: &mut Rng,
        day: Day,
        account_id: &str,
        contacts: &[Contact],
        satisfaction: f64,
        decline: f64,
        late_payer: bool,
    ) -> Result<(), SampleError> {
        self.counters.case += 1;
        let opened_at = rng.between(25_200, 68_400) as u32;
        let category = match rng.weighted(&[0.3, if late_payer { 0.3 } else { 0.12 }, 0.2, 0.1, 0.15, 0.08]) {
            0 => "Delivery",
            1 => "Billing",
            2 => "Product Quality",
            3 => "Returns",
            4 => "Technical",
            _ => "Account",
        };
        let priority = match rng.weighted(&[0.3 - 0.2 * decline, 0.45, 0.2 + 0.1 * decline, 0.05 + 0.1 * decline]) {
            0 => "Low",
            1 => "Medium",
            2 => "High",
            _ => "Urgent",
        };
        let first_response = (rng.lognormal(4.2, 1.0) * if satisfaction < -0.5 { 1.6 } else { 1.0 }).round() as i64;
        let resolve_hours = rng.lognormal(3.2, 1.0);
        let closed_seconds = opened_at as i64 + (resolve_hours * 3600.0) as i64;
        let closed_day = day + (closed_seconds / 86_400) as Day;
        let t = &mut self.exports.tickets;
        t.text(&format!("{:08}", self.counters.case));
        t.text(account_id);
        t.text(&contacts[contact_on(rng, contacts, day)].id);
        t.text(rng.pick(&["Phone", "Email", "Web", "Chat"]));
        t.text(category);
        t.text(priority);
        let closed = closed_day <= self.world.end;
        t.text(if closed { "Closed" } else { "Open" });
        t.timestamp(day, opened_at);
        if closed {
            t.timestamp(closed_day, (closed_seconds % 86_400) as u32)
        } else {
            t.empty()
        }
        t.int(first_response);
        if closed && rng.chance(0.55) {
            let score = 4.1 + 0.5 * satisfaction - 1.8 * decline - if first_response > 240 { 0.4 } else { 0.0 }
                + 0.6 * rng.normal();
            t.int(score.round().clamp(1.0, 5.0) as i64);
        } else {
            t.empty();
        }
        t.end_row()
    }

    #[allow(clippy::too_many_arguments)]
    fn interaction(
        &mut self,
        rng: &mut Rng,
        day: Day,
        account_id: &str,
        contacts: &[Contact],
        segment: Segment,
        owner: &str,
        inbound_bias: f64,
        satisfaction: f64,
        decline: f64,
        memberships: &[Membership],
    ) -> Result<(), SampleError> {
        self.counters.activity += 1;
        let meeting_share = if segment == Segment::Enterprise { 0.2 } else { 0.05 };
        let (kind, duration, outcomes): (&str, i64, &[&str]) = match rng.weighted(&[0.40, 0.35, meeting_share, 0.15]) {
            0 => (
                "Call",
                rng.lognormal(5.4, 0.7) as i64,
                &["Connected", "Connected", "Left Voicemail", "No Answer"],
            ),
            1 => ("Email", 0, &["Sent", "Replied"]),
            2 => ("Meeting", 900 * rng.between(2, 6), &["Held", "Held", "Rescheduled"]),
            _ => ("Chat", rng.between(120, 1200), &["Resolved", "Escalated"]),
        };
        let inbound = kind != "Meeting" && rng.chance(inbound_bias);
        let campaign = memberships
            .iter()
            .find(|m| kind == "Email" && !inbound && m.reached_on(self.world, day))
            .map(|m| &self.world.campaigns[m.campaign]);
        let id = crm_id(self.seed, "00T", 7, self.counters.activity);
        let buf = self.exports.activities.raw();
        buf.extend_from_slice(b"{\"Id\":");
        push_json_string(buf, &id);
        buf.extend_from_slice(b",\"Type\":");
        push_json_string(buf, kind);
        buf.extend_from_slice(b",\"AccountId\":");
        push_json_string(buf, account_id);
        buf.extend_from_slice(b",\"WhoId\":");
        push_json_string(buf, &contacts[contact_on(rng, contacts, day)].id);
        buf.extend_from_slice(b",\"ActivityDate\":\"");
        push_timestamp(buf, day, rng.between(27_000, 66_600) as u32);
        buf.extend_from_slice(b"\",\"Direction\":");
        push_json_string(buf, if inbound { "Inbound" } else { "Outbound" });
        buf.extend_from_slice(b",\"DurationSeconds\":");
        push_int(buf, duration);
        buf.extend_from_slice(b",\"Outcome\":");
        push_json_string(buf, rng.pick(outcomes));
        buf.extend_from_slice(b",\"OwnerName\":");
        push_json_string(buf, owner);
        buf.extend_from_slice(b",\"CampaignId\":");
        match campaign {
            Some(c) => push_json_string(buf, &c.id),
            None => buf.extend_from_slice(b"null"),
        }
        // Only calls and chats are transcribed and scored, and not all of them.
        if matches!(kind, "Call" | "Chat") && rng.chance(0.6) {
            let sentiment = (0.3 + 0.3 * satisfaction - 0.9 * decline + 0.3 * rng.normal()).clamp(-1.0, 1.0);
            buf.extend_from_slice(b",\"Sentiment\":");
            let hundredths = (sentiment * 100.0).round() as i64;
            if hundredths < 0 {
                buf.push(b'-');
            }
            push_int(buf, hundredths.abs() / 100);
            buf.push(b'.');
            let frac = hundredths.abs() % 100;
            buf.push(b'0' + (frac / 10) as u8);
            buf.push(b'0' + (frac % 10) as u8);
        }
        buf.push(b'}');
        self.exports.activities.end_row()
    }

    #[allow(clippy::too_many_arguments)]
    fn lead(
        &mut self,
        rng: &mut Rng,
        company: &str,
        first: &str,
        last: &str,
        email: &str,
        phone: &str,
        country: &str,
        source: &str,
        created: Day,
        converted: Option<(Day, &str)>,
    ) -> Result<(), SampleError> {
        self.counters.lead += 1;
        let t = &mut self.exports.leads;
        t.text(&crm_id(self.seed, "00Q", 5, self.counters.lead));
        t.text(company);
        t.text(first);
        t.text(last);
        t.text(email);
        t.text(phone);
        t.text(country);
        t.text(source);
        t.text(match converted {
            Some(_) => "Converted",
            None => rng.pick(&["Open", "Working", "Unqualified", "Unqualified"]),
        });
        t.timestamp(created, rng.between(28_800, 64_800) as u32);
        t.text(bool_text(converted.is_some()));
        match converted {
            Some((day, account)) => {
                t.date(day);
                t.text(account);
            }
            None => {
                t.empty();
                t.empty();
            }
        }
        t.end_row()
    }

    #[allow(clippy::too_many_arguments)]
    fn opportunity(
        &mut self,
        rng: &mut Rng,
        created: Day,
        account_id: &str,
        company: &str,
        deal_size: f64,
        win: f64,
        owner: &str,
    ) -> Result<(), SampleError> {
        self.counters.opportunity += 1;
        let close = created + 20 + rng.below(130) as Day;
        let amount = (deal_size * rng.lognormal(0.0, 0.7) * 100.0).round() as i64;
        let closed = close <= self.world.end;
        let (stage, probability, won) = if closed {
            if rng.chance(win) {
                ("Closed Won", 100, true)
            } else {
                ("Closed Lost", 0, false)
            }
        } else {
            let elapsed = (self.world.end - created) as f64 / (close - created) as f64;
            match elapsed {
                x if x < 0.25 => ("Prospecting", 10, false),
                x if x < 0.5 => ("Qualification", 20, false),
                x if x < 0.75 => ("Proposal", 50, false),
                _ => ("Negotiation", 75, false),
            }
        };
        let (year, ..) = super::calendar::civil(created);
        let kind = rng.pick(&["New Business", "Upsell", "Renewal"]);
        let t = &mut self.exports.opportunities;
        t.text(&crm_id(self.seed, "006", 6, self.counters.opportunity));
        t.text(account_id);
        t.text(&format!("{company} - {kind} {year}"));
        t.text(stage);
        t.money(amount);
        t.int(probability);
        t.date(close);
        t.timestamp(created, rng.between(28_800, 64_800) as u32);
        t.text(bool_text(closed));
        t.text(bool_text(won));
        t.text(kind);
        t.text(owner);
        t.end_row()
    }
}

struct OrderContext<'a> {
    erp_number: u64,
    country: &'a Country,
    channel: usize,
    rep_code: &'a str,
    preference: &'a [f64; NCAT],
    memberships: &'a [Membership],
    discount_bp: i64,
    lines_per_order: f64,
    quantity: f64,
    payment_terms: Day,
    late_payer: bool,
    decline: f64,
    churn: Option<Day>,
}

/// The ERP's order number for a sequence number.
pub fn order_number(n: u64) -> String {
    format!("SO-{n:09}")
}

fn push_digits(out: &mut String, value: i64) {
    let mut b = itoa::Buffer::new();
    out.push_str(b.format(value));
}

/// The same tax id as an ERP clerk might have typed it: spaced, dashed or in lower case.
fn reformat_tax(tax: &str, rng: &mut Rng) -> String {
    let (prefix, digits) = tax.split_at(2);
    match rng.below(3) {
        0 => format!("{prefix} {} {} {}", &digits[..3], &digits[3..6], &digits[6..]),
        1 => format!("{prefix}-{digits}"),
        _ => tax.to_lowercase(),
    }
}

/// A tax id with two neighbouring digits swapped, or one digit changed if they are equal.
fn typo(tax: &str, rng: &mut Rng) -> String {
    let mut bytes = tax.as_bytes().to_vec();
    let i = 2 + rng.below((bytes.len() - 3) as u64) as usize;
    if bytes[i] != bytes[i + 1] {
        bytes.swap(i, i + 1);
    } else {
        bytes[i] = b'0' + (bytes[i] - b'0' + 1) % 10;
    }
    String::from_utf8(bytes).expect("tax ids are ASCII")
}

/// An e-mail address as typed by someone else: capitalised, or with stray spaces.
fn vary_case(email: &str) -> String {
    let mut out = String::with_capacity(email.len() + 2);
    let mut capital = true;
    for ch in email.chars() {
        out.push(if capital { ch.to_ascii_uppercase() } else { ch });
        capital = ch == '.' || ch == '@';
    }
    out
}
