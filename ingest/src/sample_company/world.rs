//! What the sample company sells and how its market behaves: categories with their seasons, price
//! elasticities and return rates; products with launches, trends and bought-together partners;
//! yearly price lists; campaigns with their promotions; sales reps.
//!
//! All of it is small (a few hundred products, a few dozen campaigns) and independent of the number
//! of customers, so it is built once and held in memory.

use super::calendar::{Day, add_years, civil, day_of, weekday, year_fraction};
use super::names::{COUNTRIES, FIRST_NAMES, LAST_NAMES};
use super::random::Rng;

/// Random streams, one per kind of entity (see [`Rng::new`]).
pub mod stream {
    /// Catalogue and products.
    pub const CATALOG: u64 = 1;
    /// Campaigns.
    pub const CAMPAIGN: u64 = 2;
    /// Sales reps.
    pub const REPS: u64 = 3;
    /// One stream per customer.
    pub const CUSTOMER: u64 = 4;
    /// Inventory replenishment.
    pub const INVENTORY: u64 = 5;
    /// Identifiers that must look random but stay unique.
    pub const IDS: u64 = 6;
}

/// A product category and the market behaviour of everything in it.
pub struct Category {
    /// Category name, as the ERP prints it.
    pub name: &'static str,
    /// Subcategories.
    pub subcategories: &'static [&'static str],
    /// Brands sold in the category.
    pub brands: &'static [&'static str],
    /// Median list price in cents.
    pub median_price: f64,
    /// Cost of goods as a share of list price.
    pub cost_ratio: f64,
    /// Price elasticity of demand (quantity multiplier is (1 - discount)^-elasticity).
    pub elasticity: f64,
    /// Share of order lines returned.
    pub return_rate: f64,
    /// Seasonal amplitude (0 = flat) and the peak as a fraction of the year.
    pub season: (f64, f64),
    /// Typical quantity per line, before the customer's own scale.
    pub quantity: f64,
    /// Share of products in the catalogue.
    pub share: f64,
}

/// The catalogue's categories.
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "Office Supplies",
        subcategories: &["Paper", "Writing", "Filing", "Desk Accessories"],
        brands: &["Papyra", "Scriptum", "Ordo"],
        median_price: 900.0,
        cost_ratio: 0.58,
        elasticity: 1.6,
        return_rate: 0.015,
        season: (0.18, 0.68),
        quantity: 6.0,
        share: 0.18,
    },
    Category {
        name: "Cleaning & Hygiene",
        subcategories: &["Detergents", "Paper Hygiene", "Dispensers", "Disinfectants"],
        brands: &["Purex", "Sanitas", "Klarin"],
        median_price: 1500.0,
        cost_ratio: 0.55,
        elasticity: 1.4,
        return_rate: 0.012,
        season: (0.15, 0.05),
        quantity: 5.0,
        share: 0.14,
    },
    Category {
        name: "Heating & Climate",
        subcategories: &["Heaters", "Fans", "Air Purifiers", "Dehumidifiers"],
        brands: &["Thermo", "Aeris"],
        median_price: 9000.0,
        cost_ratio: 0.66,
        elasticity: 1.2,
        return_rate: 0.05,
        season: (0.85, 0.02),
        quantity: 1.5,
        share: 0.06,
    },
    Category {
        name: "Outdoor & Grounds",
        subcategories: &["Garden Tools", "Furniture Outdoor", "De-icing", "Signage"],
        brands: &["Verda", "Terran"],
        median_price: 4500.0,
        cost_ratio: 0.62,
        elasticity: 1.5,
        return_rate: 0.035,
        season: (0.75, 0.45),
        quantity: 2.0,
        share: 0.07,
    },
    Category {
        name: "Safety & PPE",
        subcategories: &["Gloves", "Masks", "Workwear", "First Aid"],
        brands: &["Guardia", "Secura", "Fortis"],
        median_price: 2200.0,
        cost_ratio: 0.57,
        elasticity: 1.1,
        return_rate: 0.02,
        season: (0.10, 0.9),
        quantity: 4.0,
        share: 0.12,
    },
    Category {
        name: "IT Accessories",
        subcategories: &["Cables", "Peripherals", "Storage", "Toner & Ink"],
        brands: &["Bitline", "Nexa", "Tonerix"],
        median_price: 3500.0,
        cost_ratio: 0.70,
        elasticity: 1.9,
        return_rate: 0.045,
        season: (0.25, 0.9),
        quantity: 2.5,
        share: 0.15,
    },
    Category {
        name: "Furniture",
        subcategories: &["Chairs", "Desks", "Storage Furniture", "Lighting"],
        brands: &["Ergon", "Sedia"],
        median_price: 24_000.0,
        cost_ratio: 0.60,
        elasticity: 1.3,
        return_rate: 0.06,
        season: (0.20, 0.7),
        quantity: 1.2,
        share: 0.08,
    },
    Category {
        name: "Breakroom & Catering",
        subcategories: &["Coffee & Tea", "Snacks", "Tableware", "Beverages"],
        brands: &["Kaffa", "Mensa", "Aqualis"],
        median_price: 1200.0,
        cost_ratio: 0.64,
        elasticity: 1.7,
        return_rate: 0.01,
        season: (0.22, 0.95),
        quantity: 5.0,
        share: 0.10,
    },
    Category {
        name: "Packaging & Shipping",
        subcategories: &["Boxes", "Tape", "Labels", "Protective"],
        brands: &["Packwell", "Cartona"],
        median_price: 1800.0,
        cost_ratio: 0.52,
        elasticity: 1.5,
        return_rate: 0.008,
        season: (0.35, 0.88),
        quantity: 8.0,
        share: 0.10,
    },
];

/// Number of categories.
pub const NCAT: usize = CATEGORIES.len();

/// Seasonal demand factor of a category on a day (1 on average over the year).
#[inline]
pub fn category_season(category: usize, day: Day) -> f64 {
    let (amplitude, peak) = CATEGORIES[category].season;
    1.0 + amplitude * libm::cos(std::f64::consts::TAU * (year_fraction(day) - peak))
}

/// How a B2B distributor's orders spread over the week, Monday first.
pub const WEEKLY_B2B: [f64; 7] = [1.22, 1.15, 1.10, 1.05, 0.93, 0.18, 0.06];
/// Web orders are flatter over the week.
pub const WEEKLY_WEB: [f64; 7] = [1.10, 1.05, 1.02, 1.00, 0.97, 0.50, 0.36];

/// Ordering intensity through the year: an autumn high, a summer-holiday dip and the shutdown
/// between Christmas and New Year.
pub fn yearly_factor(day: Day) -> f64 {
    let (_, month, dom) = civil(day);
    let base = 1.0 + 0.12 * libm::cos(std::f64::consts::TAU * (year_fraction(day) - 0.80));
    let holiday = match (month, dom) {
        (12, 24..=31) | (1, 1) => 0.25,
        (8, _) => 0.82,
        _ => 1.0,
    };
    base * holiday
}

/// Sales channels, in the order the exports use.
pub const CHANNELS: [&str; 5] = ["Web", "Phone", "Field Sales", "Partner", "Store"];

/// One product of the catalogue.
pub struct Product {
    /// ERP material number.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Index into [`CATEGORIES`].
    pub category: usize,
    /// Subcategory name.
    pub subcategory: &'static str,
    /// Brand.
    pub brand: &'static str,
    /// First day it can be sold.
    pub launched: Day,
    /// List price per year of the window, in cents (index 0 = the window's first calendar year).
    pub price: Vec<i64>,
    /// Standard cost per year, in cents.
    pub cost: Vec<i64>,
    /// Demand trend: relative change per year.
    pub trend: f64,
    /// Popularity within its category.
    pub popularity: f64,
    /// A product often bought with this one.
    pub partner: Option<usize>,
}

/// A marketing campaign and the promotion it runs.
pub struct Campaign {
    /// CRM campaign id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Campaign type (Email, Webinar, ...).
    pub kind: &'static str,
    /// Promoted category.
    pub category: usize,
    /// Discount on the category while it runs, in basis points.
    pub discount_bp: i64,
    /// First and last day.
    pub start: Day,
    /// Last day (inclusive).
    pub end: Day,
    /// Budget and actual cost in cents.
    pub budget: i64,
    /// Actual cost in cents.
    pub actual_cost: i64,
}

/// A sales rep (account owner).
pub struct SalesRep {
    /// CRM user name.
    pub name: String,
    /// ERP sales-rep code.
    pub code: String,
    /// The region they cover.
    pub region: &'static str,
}

/// Everything global to the simulation.
pub struct World {
    /// First day of the observation window.
    pub start: Day,
    /// Last day of the observation window (inclusive).
    pub end: Day,
    /// Calendar year of `start`.
    pub first_year: i32,
    /// The catalogue.
    pub products: Vec<Product>,
    /// Campaigns in start order.
    pub campaigns: Vec<Campaign>,
    /// Sales reps.
    pub reps: Vec<SalesRep>,
    /// Per country (in `COUNTRIES` order), the reps covering its region.
    pub reps_by_country: Vec<Vec<usize>>,
    /// Cumulative country weights, for drawing a customer's country.
    pub country_weights: Vec<f64>,
    /// Per category, the indices of its products.
    pub by_category: Vec<Vec<usize>>,
    /// Per quarter of the window and category, cumulative product weights (launch and trend).
    quarter_weights: Vec<Vec<Vec<f64>>>,
    /// Per day of the window and category: the promotion running (campaign index), if any.
    promotions: Vec<[Option<u16>; NCAT]>,
    /// Per day of the window: the factors every customer shares, computed once rather than per
    /// customer and day (they were a tenth of the generator's time).
    daily: Vec<Daily>,
}

struct Daily {
    b2b: f64,
    web: f64,
    season: [f64; NCAT],
}

impl Daily {
    fn new(start: Day, day: Day) -> Self {
        let growth = 1.0 + 0.06 * (day - start) as f64 / 365.25;
        let yearly = yearly_factor(day) * growth;
        Daily {
            b2b: WEEKLY_B2B[weekday(day)] * yearly,
            web: WEEKLY_WEB[weekday(day)] * yearly,
            season: std::array::from_fn(|c| category_season(c, day)),
        }
    }
}

impl World {
    /// Build the world for a window ending on `end` and lasting `years`.
    pub fn new(seed: u64, end: Day, years: u32) -> Self {
        let start = add_years(end, -(years as i32)) + 1;
        let first_year = civil(start).0;
        let last_year = civil(end).0;
        let n_years = (last_year - first_year + 1) as usize;

        let mut rng = Rng::new(seed, stream::CATALOG, 0);
        let total_products = 600;
        let mut products = Vec::with_capacity(total_products);
        let mut by_category = vec![Vec::new(); NCAT];
        for (c, category) in CATEGORIES.iter().enumerate() {
            let count = (category.share * total_products as f64).round() as usize;
            for rank in 0..count {
                let subcategory = rng.pick(category.subcategories);
                let brand = rng.pick(category.brands);
                let list = category.median_price * rng.lognormal(0.0, 0.55);
                let cost_ratio = (category.cost_ratio + 0.06 * rng.normal()).clamp(0.35, 0.9);
                let increase = 0.01 + 0.05 * rng.f64();
                let cost_increase = (increase + 0.01 * rng.normal()).min(increase + 0.02);
                let price: Vec<i64> = (0..n_years)
                    .map(|y| (list * libm::pow(1.0 + increase, y as f64)).round().max(50.0) as i64)
                    .collect();
                let cost = (0..n_years)
                    .map(|y| {
                        (list * cost_ratio * libm::pow(1.0 + cost_increase, y as f64))
                            .round()
                            .max(20.0) as i64
                    })
                    .collect();
                // One product in five is launched during the window; the rest were already selling.
                let launched = if rng.chance(0.2) {
                    start + rng.below((end - start - 60).max(1) as u64) as Day
                } else {
                    start - 30 - rng.below(2500) as Day
                };
                let sku = format!("{}", 4_000_000 + products.len() * 7 + rng.below(7) as usize);
                let model = format!("{}{}", (b'A' + rng.below(26) as u8) as char, 100 + rng.below(900));
                by_category[c].push(products.len());
                products.push(Product {
                    sku,
                    name: format!("{brand} {subcategory} {model}"),
                    category: c,
                    subcategory,
                    brand,
                    launched,
                    price,
                    cost,
                    trend: 0.12 * rng.normal(),
                    // Zipf-like: a few products sell most within each category.
                    popularity: 1.0 / libm::pow(1.0 + rank as f64, 0.9),
                    partner: None,
                });
            }
        }
        // Bought together: pairs of a popular product and a complement, mostly across categories
        // (printer and toner, chairs and desks, coffee and tableware).
        for _ in 0..60 {
            let a = rng.below(products.len() as u64) as usize;
            let b = rng.below(products.len() as u64) as usize;
            if a != b && products[a].partner.is_none() && products[b].popularity > 0.05 {
                products[a].partner = Some(b);
            }
        }

        let n_quarters = ((end - start) / 91 + 2) as usize;
        let quarter_weights = (0..n_quarters)
            .map(|q| {
                let day = start + q as Day * 91;
                by_category
                    .iter()
                    .map(|members| {
                        let mut acc = 0.0;
                        members
                            .iter()
                            .map(|&p| {
                                let product = &products[p];
                                if product.launched <= day {
                                    let age = (day - start) as f64 / 365.25;
                                    acc += product.popularity * libm::pow((1.0 + product.trend).max(0.2), age);
                                }
                                acc
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();

        let campaigns = make_campaigns(seed, start, end);
        let mut promotions = vec![[None; NCAT]; (end - start + 1) as usize];
        for (i, campaign) in campaigns.iter().enumerate() {
            for day in campaign.start.max(start)..=campaign.end.min(end) {
                promotions[(day - start) as usize][campaign.category] = Some(i as u16);
            }
        }

        let mut rng = Rng::new(seed, stream::REPS, 0);
        let mut reps = Vec::new();
        let mut regions: Vec<&'static str> = COUNTRIES.iter().map(|c| c.region).collect();
        regions.dedup();
        for region in regions {
            for _ in 0..5 {
                let code = format!("SR{:03}", reps.len() + 1);
                reps.push(SalesRep {
                    name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
                    code,
                    region,
                });
            }
        }

        let reps_by_country = COUNTRIES
            .iter()
            .map(|c| (0..reps.len()).filter(|&r| reps[r].region == c.region).collect())
            .collect();
        let country_weights = COUNTRIES
            .iter()
            .scan(0.0, |acc, c| {
                *acc += c.weight;
                Some(*acc)
            })
            .collect();
        let daily = (start..=end).map(|day| Daily::new(start, day)).collect();
        World {
            start,
            end,
            first_year,
            products,
            campaigns,
            reps,
            reps_by_country,
            country_weights,
            by_category,
            quarter_weights,
            promotions,
            daily,
        }
    }

    /// Index of the calendar year of `day` in the yearly price vectors.
    #[inline]
    pub fn year_index(&self, day: Day) -> usize {
        (civil(day).0 - self.first_year).max(0) as usize
    }

    /// The campaign promoting a category on a day, if any.
    #[inline]
    pub fn promotion(&self, day: Day, category: usize) -> Option<&Campaign> {
        let idx = (day - self.start) as usize;
        self.promotions
            .get(idx)
            .and_then(|p| p[category])
            .map(|c| &self.campaigns[c as usize])
    }

    /// Draw a product of a category that is on sale on `day`, weighted by popularity and trend.
    #[inline]
    pub fn draw_product(&self, rng: &mut Rng, category: usize, day: Day) -> Option<usize> {
        let q = ((day - self.start) / 91) as usize;
        let weights = &self.quarter_weights[q.min(self.quarter_weights.len() - 1)][category];
        if weights.last().copied().unwrap_or(0.0) <= 0.0 {
            return None;
        }
        let p = self.by_category[category][rng.cumulative(weights)];
        (self.products[p].launched <= day).then_some(p)
    }

    /// Ordering intensity multiplier on a day of the window, for web or for B2B ordering habits.
    #[inline]
    pub fn order_intensity(&self, day: Day, web: bool) -> f64 {
        let daily = &self.daily[(day - self.start) as usize];
        if web { daily.web } else { daily.b2b }
    }

    /// Seasonal demand factor of a category on a day of the window (see [`category_season`]).
    #[inline]
    pub fn season(&self, day: Day, category: usize) -> f64 {
        self.daily[(day - self.start) as usize].season[category]
    }
}

fn make_campaigns(seed: u64, start: Day, end: Day) -> Vec<Campaign> {
    const KINDS: [&str; 5] = ["Email", "Webinar", "Direct Mail", "Trade Show", "Paid Search"];
    let mut rng = Rng::new(seed, stream::CAMPAIGN, 0);
    let mut campaigns = Vec::new();
    let (mut year, mut month, _) = civil(start);
    loop {
        let first = day_of(year, month, 1);
        if first > end {
            break;
        }
        // Marketing promotes what is in season: choose the category by its seasonal demand.
        let mid = first + 14;
        let weights: Vec<f64> = (0..NCAT)
            .map(|c| category_season(c, mid) * category_season(c, mid))
            .collect();
        let category = rng.weighted(&weights);
        let begin = first + rng.below(10) as Day;
        if begin > end {
            break;
        }
        let length = 14 + rng.below(15) as Day;
        let discount_bp = 500 * (1 + rng.below(4) as i64);
        let kind = rng.pick(&KINDS);
        let budget = (200_000 + rng.below(2_500_000)) as i64;
        let id = format!(
            "701{}",
            base62(super::random::mix64(seed ^ 0x0CA4 ^ campaigns.len() as u64), 12)
        );
        let season = match month {
            12 | 1 | 2 => "Winter",
            3..=5 => "Spring",
            6..=8 => "Summer",
            _ => "Autumn",
        };
        // With a window starting mid-month, the first month's campaign may begin before it.
        let within = begin >= start;
        let campaign = Campaign {
            id,
            name: format!("{year}-{month:02} {season} {} {kind}", CATEGORIES[category].name),
            kind,
            category,
            discount_bp,
            start: begin,
            end: begin + length - 1,
            budget,
            actual_cost: (budget as f64 * (0.8 + 0.3 * rng.f64())) as i64,
        };
        if within {
            campaigns.push(campaign);
        }
        if month == 12 {
            year += 1;
            month = 1;
        } else {
            month += 1;
        }
    }
    campaigns
}

/// `width` base-62 digits of `value`, as CRM systems print their record ids.
pub fn base62(mut value: u64, width: usize) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out).expect("base-62 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_company::calendar::day_of;

    #[test]
    fn world_is_consistent() {
        let world = World::new(42, day_of(2026, 9, 30), 3);
        assert_eq!(world.start, day_of(2023, 10, 1));
        assert_eq!(world.products.len(), 600);
        assert_eq!(world.campaigns.len(), 36);
        for c in &world.campaigns {
            assert!(c.start <= c.end && c.discount_bp > 0);
        }
        for p in &world.products {
            assert_eq!(p.price.len(), 4);
            assert!(
                p.price
                    .iter()
                    .zip(&p.cost)
                    .all(|(price, cost)| cost < price || *cost <= 20)
            );
        }
        let skus: std::collections::HashSet<_> = world.products.iter().map(|p| &p.sku).collect();
        assert_eq!(skus.len(), world.products.len(), "SKUs are unique");
    }
}
