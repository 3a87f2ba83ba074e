//! The semantic layer: measures and dimensions declared once, and the queries built from them.
//!
//! Dashboards and the metrics API ask for measures (`revenue`, `orders`, `active_customers`,
//! `churn_rate`, ...) by dimensions (`date` at a grain, `category`, `channel`, `region`, `segment`,
//! `product`, `campaign`) with filters; [`query_metrics`] writes the SQL. Each measure lists the
//! tables that can answer it, pre-aggregated rollups (`marts.sales_daily`, `marts.orders_daily`,
//! `marts.active_customers`, `marts.churn_monthly`, `marts.campaign_daily`, and for products over
//! whole months or weeks `marts.product_sales_monthly` and `marts.product_sales_weekly`) before the
//! facts, and the first one that has every dimension and filter of the query is used, so a
//! dashboard never scans order lines. Ratios (`average_order_value`, `gross_margin_rate`,
//! `churn_rate`, ...) are computed from their parts after aggregation, never averaged.

use serde::{Deserialize, Serialize};

use crate::engine::{QueryError, QueryResult, Warehouse};

/// A time grain for the `date` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// Calendar day.
    Day,
    /// ISO week, starting Monday.
    Week,
    /// Calendar month.
    #[default]
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

impl Grain {
    /// Its name in SQL's `date_trunc` and in `marts.active_customers.grain`.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    /// Whether a period of this grain starts on `day`.
    pub fn starts(self, day: chrono::NaiveDate) -> bool {
        use chrono::Datelike;
        match self {
            Grain::Day => true,
            Grain::Week => day.weekday() == chrono::Weekday::Mon,
            Grain::Month => day.day() == 1,
            Grain::Quarter => day.day() == 1 && day.month0().is_multiple_of(3),
            Grain::Year => day.ordinal() == 1,
        }
    }
}

/// A table that answers some measures, how it spells each dimension, and at which grains.
#[derive(Debug)]
struct Source {
    /// Label reported back (which table answered).
    name: &'static str,
    /// `FROM` clause, aliases included.
    from: &'static str,
    /// Rows that count (`WHERE`), if any.
    filter: &'static str,
    /// The day column, or `None` for sources whose periods are already grains and for snapshots
    /// (the state at the last refresh: no day and no period, so no date dimension or range).
    day: Option<&'static str>,
    /// For per-grain rollups: the grain column and the period column.
    period: Option<(&'static str, &'static str)>,
    /// Grains a per-grain source can answer (`None`: all, by truncating the day).
    grains: Option<&'static [Grain]>,
    /// For rollups of whole periods (weeks, months): the period. Such a source answers a date
    /// range only when it starts and ends on that period's boundaries, so that its answer is
    /// exactly the facts' (a range cut mid-period goes to a finer table).
    aligned: Option<Grain>,
    /// (dimension, SQL expression) pairs it has.
    dimensions: &'static [(&'static str, &'static str)],
}

const SALES_DAILY: Source = Source {
    name: "marts.sales_daily",
    from: "marts.sales_daily s",
    filter: "",
    day: Some("s.date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("category", "s.category"),
        ("channel", "s.channel"),
        ("region", "s.region"),
        ("segment", "s.segment"),
    ],
};

/// Sales by week and by month, per product and region: product questions over whole periods.
const PRODUCT_SALES_MONTHLY: Source = Source {
    name: "marts.product_sales_monthly",
    from: "marts.product_sales_monthly ps",
    filter: "",
    day: Some("ps.month"),
    period: None,
    grains: Some(&[Grain::Month, Grain::Quarter, Grain::Year]),
    aligned: Some(Grain::Month),
    dimensions: &[
        ("product", "ps.sku"),
        ("category", "ps.category"),
        ("region", "ps.region"),
    ],
};

const PRODUCT_SALES_WEEKLY: Source = Source {
    name: "marts.product_sales_weekly",
    from: "marts.product_sales_weekly ps",
    filter: "",
    day: Some("ps.week"),
    period: None,
    grains: Some(&[Grain::Week]),
    aligned: Some(Grain::Week),
    dimensions: PRODUCT_SALES_MONTHLY.dimensions,
};

const ORDERS_DAILY: Source = Source {
    name: "marts.orders_daily",
    from: "marts.orders_daily o",
    filter: "",
    day: Some("o.date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("channel", "o.channel"),
        ("region", "o.region"),
        ("segment", "o.segment"),
    ],
};

const ACTIVE_CUSTOMERS: Source = Source {
    name: "marts.active_customers",
    from: "marts.active_customers a",
    filter: "",
    day: None,
    period: Some(("a.grain", "a.period")),
    grains: None,
    aligned: None,
    dimensions: &[("region", "a.region"), ("segment", "a.segment")],
};

const CHURN_MONTHLY: Source = Source {
    name: "marts.churn_monthly",
    from: "marts.churn_monthly m",
    filter: "",
    day: Some("m.month"),
    period: None,
    grains: Some(&[Grain::Month, Grain::Quarter, Grain::Year]),
    aligned: None,
    dimensions: &[("region", "m.region"), ("segment", "m.segment")],
};

/// The orders themselves: distinct customers over any range (which per-period rollups cannot add
/// up) from one row per order, a quarter of the order lines, when no category or product is asked.
const SALES_ORDERS: Source = Source {
    name: "core.sales_order",
    from: "core.sales_order o LEFT JOIN core.customer c ON c.customer_key = o.customer_key",
    filter: "o.status <> 'cancelled'",
    day: Some("o.order_date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("channel", "COALESCE(o.channel, 'unknown')"),
        ("region", "COALESCE(o.region, 'unknown')"),
        ("segment", "COALESCE(c.segment, 'unknown')"),
    ],
};

/// The order lines themselves: every sales measure by every sales dimension, product included.
const ORDER_LINES: Source = Source {
    name: "core.order_line",
    from: "core.order_line l LEFT JOIN core.customer c ON c.customer_key = l.customer_key",
    filter: "l.status <> 'cancelled'",
    day: Some("l.order_date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("category", "COALESCE(l.category, 'unknown')"),
        ("channel", "COALESCE(l.channel, 'unknown')"),
        ("region", "COALESCE(l.region, 'unknown')"),
        ("segment", "COALESCE(c.segment, 'unknown')"),
        ("product", "l.sku"),
    ],
};

/// Campaign touches, targeted and control, summed by day, campaign, channel, region and segment.
const CAMPAIGN_DAILY: Source = Source {
    name: "marts.campaign_daily",
    from: "marts.campaign_daily g",
    filter: "",
    day: Some("g.date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("campaign", "g.campaign"),
        ("channel", "g.channel"),
        ("region", "g.region"),
        ("segment", "g.segment"),
    ],
};

/// Campaigns themselves (their cost), dated by their start.
const CAMPAIGNS: Source = Source {
    name: "core.campaign",
    from: "core.campaign k",
    filter: "",
    day: Some("CAST(k.started_at AS DATE)"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[("campaign", "k.name"), ("channel", "COALESCE(k.channel, 'unknown')")],
};

/// Opportunities, dated by creation, with the customer's region and segment.
const OPPORTUNITIES: Source = Source {
    name: "core.opportunity",
    from: "core.opportunity o LEFT JOIN core.customer c ON c.customer_key = o.customer_key",
    filter: "",
    day: Some("CAST(o.created_at AS DATE)"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("stage", "COALESCE(o.stage, 'unknown')"),
        ("region", "COALESCE(c.region, 'unknown')"),
        ("segment", "COALESCE(c.segment, 'unknown')"),
    ],
};

/// Leads, dated by creation (a lead has a country but no customer yet, so no region or segment).
const LEADS: Source = Source {
    name: "core.lead",
    from: "core.lead d",
    filter: "",
    day: Some("CAST(d.created_at AS DATE)"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("lead_source", "COALESCE(d.source, 'unknown')"),
        ("lead_status", "COALESCE(d.status, 'unknown')"),
    ],
};

/// Stock snapshots per product and location.
const STOCK: Source = Source {
    name: "core.inventory_snapshot",
    from: "core.inventory_snapshot i",
    filter: "",
    day: Some("i.snapshot_date"),
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[("product", "i.sku")],
};

/// Cohort retention: the date is the cohort's first-purchase month.
const COHORTS: Source = Source {
    name: "marts.cohort_retention",
    from: "marts.cohort_retention r",
    filter: "",
    day: Some("r.cohort_month"),
    period: None,
    grains: Some(&[Grain::Month, Grain::Quarter, Grain::Year]),
    aligned: None,
    dimensions: &[("months_since_first", "r.period")],
};

/// Customers as of the last refresh (a snapshot).
const CUSTOMERS: Source = Source {
    name: "marts.customer_7p",
    from: "marts.customer_7p p",
    filter: "",
    day: None,
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("region", "COALESCE(p.region, 'unknown')"),
        ("segment", "COALESCE(p.segment, 'unknown')"),
        ("rfm_segment", "COALESCE(p.rfm_segment, 'no purchase')"),
    ],
};

/// Lifetime values from the last lifetime job (a snapshot).
const LIFETIME: Source = Source {
    name: "ml.customer_lifetime",
    from: "ml.customer_lifetime v JOIN core.customer c ON c.customer_key = v.customer_key",
    filter: "",
    day: None,
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[
        ("region", "COALESCE(c.region, 'unknown')"),
        ("segment", "COALESCE(c.segment, 'unknown')"),
        (
            "clv_band",
            "CASE WHEN v.clv < 100 THEN 0 WHEN v.clv < 250 THEN 100 WHEN v.clv < 500 THEN 250 \
             WHEN v.clv < 1000 THEN 500 WHEN v.clv < 2500 THEN 1000 WHEN v.clv < 5000 THEN 2500 \
             WHEN v.clv < 10000 THEN 5000 WHEN v.clv < 25000 THEN 10000 ELSE 25000 END",
        ),
    ],
};

/// Product association rules from the last refresh (a snapshot): product => bought_with.
const ASSOCIATIONS: Source = Source {
    name: "marts.product_association",
    from: "marts.product_association a",
    filter: "a.level = 'product'",
    day: None,
    period: None,
    grains: None,
    aligned: None,
    dimensions: &[("product", "a.antecedent"), ("bought_with", "a.consequent")],
};

/// A measure: an aggregate per source that can answer it, in order of preference.
#[derive(Debug)]
pub struct Measure {
    /// Name used in queries.
    pub name: &'static str,
    /// What it means, for the API's catalogue and the dashboards' tooltips.
    pub description: &'static str,
    answers: &'static [(&'static Source, &'static str)],
}

/// A ratio of two measures, computed after both are aggregated.
#[derive(Debug)]
pub struct Ratio {
    /// Name used in queries.
    pub name: &'static str,
    /// What it means.
    pub description: &'static str,
    /// Numerator measure.
    pub numerator: &'static str,
    /// Denominator measure.
    pub denominator: &'static str,
    /// `1 - numerator / denominator` instead (retention from churn and back).
    pub complement: bool,
}

/// Every base measure.
pub const MEASURES: &[Measure] = &[
    Measure {
        name: "revenue",
        description: "Net sales: quantity x unit price less discounts, cancelled orders left out",
        answers: &[
            (&SALES_DAILY, "SUM(s.revenue)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.revenue)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.revenue)"),
            (&ORDER_LINES, "SUM(l.net_amount)"),
        ],
    },
    Measure {
        name: "gross_sales",
        description: "Quantity x unit price, before discounts",
        answers: &[
            (&SALES_DAILY, "SUM(s.gross_sales)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.gross_sales)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.gross_sales)"),
            (&ORDER_LINES, "SUM(l.gross_amount)"),
        ],
    },
    Measure {
        name: "discounts",
        description: "Gross sales less net sales",
        answers: &[
            (&SALES_DAILY, "SUM(s.discounts)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.discounts)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.discounts)"),
            (&ORDER_LINES, "SUM(l.discount_amount)"),
        ],
    },
    Measure {
        name: "returns",
        description: "Value credited for returned goods, in the period of the original sale",
        answers: &[
            (&SALES_DAILY, "SUM(s.returns)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.returns)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.returns)"),
            (&ORDER_LINES, "SUM(l.returned_amount)"),
        ],
    },
    Measure {
        name: "cost_of_goods",
        description: "Cost of the goods sold and kept",
        answers: &[
            (&SALES_DAILY, "SUM(s.cost_of_goods)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.cost_of_goods)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.cost_of_goods)"),
            (&ORDER_LINES, "SUM(l.cost_amount - l.returned_cost)"),
        ],
    },
    Measure {
        name: "gross_margin",
        description: "Gross sales - discounts - returns - cost of goods",
        answers: &[
            (&SALES_DAILY, "SUM(s.gross_margin)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.gross_margin)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.gross_margin)"),
            (
                &ORDER_LINES,
                "SUM(l.net_amount - l.returned_amount - l.cost_amount + l.returned_cost)",
            ),
        ],
    },
    Measure {
        name: "units",
        description: "Quantity sold",
        answers: &[
            (&SALES_DAILY, "SUM(s.units)"),
            (&PRODUCT_SALES_MONTHLY, "SUM(ps.units)"),
            (&PRODUCT_SALES_WEEKLY, "SUM(ps.units)"),
            (&ORDER_LINES, "SUM(l.quantity)"),
        ],
    },
    Measure {
        name: "orders",
        description: "Orders placed, cancelled ones left out",
        answers: &[
            (&ORDERS_DAILY, "SUM(o.orders)"),
            (&ORDER_LINES, "COUNT(DISTINCT l.order_id)"),
        ],
    },
    Measure {
        name: "active_customers",
        description: "Distinct customers who bought in the period",
        answers: &[
            (&ACTIVE_CUSTOMERS, "SUM(a.active_customers)"),
            (&SALES_ORDERS, "COUNT(DISTINCT o.customer_key)"),
            (&ORDER_LINES, "COUNT(DISTINCT l.customer_key)"),
        ],
    },
    Measure {
        name: "churned_customers",
        description: "Customers who bought in a month and then nothing for the churn window (90 days)",
        answers: &[(&CHURN_MONTHLY, "SUM(m.churned_customers)")],
    },
    Measure {
        name: "judged_customers",
        description: "Customers who bought in a month and whose churn can be judged already",
        answers: &[(&CHURN_MONTHLY, "SUM(m.judged_customers)")],
    },
    Measure {
        name: "touches",
        description: "Campaign messages sent to targeted customers (control groups left out)",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.touches)")],
    },
    Measure {
        name: "responses",
        description: "Targeted customers who responded",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.responses)")],
    },
    Measure {
        name: "conversions",
        description: "Touches that converted into an order",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.conversions)")],
    },
    Measure {
        name: "attributed_revenue",
        description: "Value of the orders campaigns converted",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.attributed_revenue)")],
    },
    Measure {
        name: "control_touches",
        description: "Campaign messages held back from control-group customers",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.control_touches)")],
    },
    Measure {
        name: "control_responses",
        description: "Control-group customers who responded anyway",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.control_responses)")],
    },
    Measure {
        name: "control_conversions",
        description: "Control-group customers who bought anyway",
        answers: &[(&CAMPAIGN_DAILY, "SUM(g.control_conversions)")],
    },
    Measure {
        name: "campaigns",
        description: "Campaigns started",
        answers: &[(&CAMPAIGNS, "COUNT(*)")],
    },
    Measure {
        name: "campaign_cost",
        description: "Actual cost of the campaigns started (the budget where no cost is booked)",
        answers: &[(&CAMPAIGNS, "SUM(k.cost)")],
    },
    Measure {
        name: "opportunities",
        description: "Opportunities created",
        answers: &[(&OPPORTUNITIES, "COUNT(*)")],
    },
    Measure {
        name: "open_pipeline",
        description: "Amount of the opportunities still open",
        answers: &[(&OPPORTUNITIES, "SUM(CASE WHEN o.is_closed THEN 0 ELSE o.amount END)")],
    },
    Measure {
        name: "weighted_pipeline",
        description: "Amount of the open opportunities weighted by their win probability",
        answers: &[(
            &OPPORTUNITIES,
            "SUM(CASE WHEN o.is_closed THEN 0 ELSE o.weighted_amount END)",
        )],
    },
    Measure {
        name: "closed_opportunities",
        description: "Opportunities closed, won or lost",
        answers: &[(&OPPORTUNITIES, "SUM(CASE WHEN o.is_closed THEN 1 ELSE 0 END)")],
    },
    Measure {
        name: "won_opportunities",
        description: "Opportunities closed as won",
        answers: &[(&OPPORTUNITIES, "SUM(CASE WHEN o.is_won THEN 1 ELSE 0 END)")],
    },
    Measure {
        name: "won_amount",
        description: "Amount of the opportunities won",
        answers: &[(&OPPORTUNITIES, "SUM(CASE WHEN o.is_won THEN o.amount ELSE 0 END)")],
    },
    Measure {
        name: "leads",
        description: "Leads created",
        answers: &[(&LEADS, "COUNT(*)")],
    },
    Measure {
        name: "converted_leads",
        description: "Leads that became customers",
        answers: &[(&LEADS, "SUM(CASE WHEN d.is_converted THEN 1 ELSE 0 END)")],
    },
    Measure {
        name: "stock_on_hand",
        description: "Units in stock over all locations, averaged over the snapshot days of the period",
        answers: &[(
            &STOCK,
            "CAST(SUM(i.on_hand) AS DOUBLE) / COUNT(DISTINCT i.snapshot_date)",
        )],
    },
    Measure {
        name: "stock_on_order",
        description: "Units on order over all locations, averaged over the snapshot days of the period",
        answers: &[(
            &STOCK,
            "CAST(SUM(i.on_order) AS DOUBLE) / COUNT(DISTINCT i.snapshot_date)",
        )],
    },
    Measure {
        name: "cohort_customers",
        description: "Customers in the cohorts (by first-purchase month), once per month since the first purchase",
        answers: &[(&COHORTS, "SUM(r.cohort_size)")],
    },
    Measure {
        name: "cohort_active_customers",
        description: "Customers of the cohorts who bought again the given number of months after their first purchase",
        answers: &[(&COHORTS, "SUM(r.active_customers)")],
    },
    Measure {
        name: "customers",
        description: "Customers, as of the last refresh",
        answers: &[(&CUSTOMERS, "COUNT(*)")],
    },
    Measure {
        name: "valued_customers",
        description: "Customers with a lifetime value from the last lifetime job",
        answers: &[(&LIFETIME, "COUNT(*)")],
    },
    Measure {
        name: "lifetime_value",
        description: "Discounted expected margin of the coming months (BG/NBD and Gamma-Gamma), summed",
        answers: &[(&LIFETIME, "SUM(v.clv)")],
    },
    Measure {
        name: "orders_together",
        description: "Orders holding both products of a pair (group by product and bought_with)",
        answers: &[(&ASSOCIATIONS, "SUM(a.orders_with_both)")],
    },
    Measure {
        name: "orders_with_product",
        description: "Orders holding the first product of a pair",
        answers: &[(&ASSOCIATIONS, "SUM(a.orders_with_antecedent)")],
    },
];

/// Every ratio.
pub const RATIOS: &[Ratio] = &[
    Ratio {
        name: "average_order_value",
        description: "Revenue per order",
        numerator: "revenue",
        denominator: "orders",
        complement: false,
    },
    Ratio {
        name: "gross_margin_rate",
        description: "Gross margin per unit of revenue",
        numerator: "gross_margin",
        denominator: "revenue",
        complement: false,
    },
    Ratio {
        name: "churn_rate",
        description: "Share of the month's buyers who then bought nothing for the churn window",
        numerator: "churned_customers",
        denominator: "judged_customers",
        complement: false,
    },
    Ratio {
        name: "retention_rate",
        description: "1 - churn_rate",
        numerator: "churned_customers",
        denominator: "judged_customers",
        complement: true,
    },
    Ratio {
        name: "response_rate",
        description: "Responses per touch",
        numerator: "responses",
        denominator: "touches",
        complement: false,
    },
    Ratio {
        name: "conversion_rate",
        description: "Conversions per touch",
        numerator: "conversions",
        denominator: "touches",
        complement: false,
    },
    Ratio {
        name: "control_response_rate",
        description: "Responses per control-group customer",
        numerator: "control_responses",
        denominator: "control_touches",
        complement: false,
    },
    Ratio {
        name: "control_conversion_rate",
        description: "Conversions per control-group customer",
        numerator: "control_conversions",
        denominator: "control_touches",
        complement: false,
    },
    Ratio {
        name: "return_on_cost",
        description: "Attributed revenue per unit of campaign cost",
        numerator: "attributed_revenue",
        denominator: "campaign_cost",
        complement: false,
    },
    Ratio {
        name: "win_rate",
        description: "Won opportunities per closed opportunity",
        numerator: "won_opportunities",
        denominator: "closed_opportunities",
        complement: false,
    },
    Ratio {
        name: "lead_conversion_rate",
        description: "Converted leads per lead",
        numerator: "converted_leads",
        denominator: "leads",
        complement: false,
    },
    Ratio {
        name: "cohort_retention",
        description: "Share of the cohorts' customers who bought in the given month since their first purchase",
        numerator: "cohort_active_customers",
        denominator: "cohort_customers",
        complement: false,
    },
    Ratio {
        name: "average_lifetime_value",
        description: "Lifetime value per valued customer",
        numerator: "lifetime_value",
        denominator: "valued_customers",
        complement: false,
    },
    Ratio {
        name: "association_confidence",
        description: "Share of the orders with the product that also hold the one bought with it",
        numerator: "orders_together",
        denominator: "orders_with_product",
        complement: false,
    },
];

/// Every dimension: `date` (at the query's grain) and these.
pub const DIMENSIONS: &[(&str, &str)] = &[
    ("date", "Order (or send) date, truncated to the query's grain"),
    ("category", "Product category"),
    ("product", "Product SKU"),
    ("channel", "Sales channel (or the campaign's channel)"),
    ("region", "Customer's region"),
    ("segment", "Customer segment"),
    ("campaign", "Campaign name"),
    ("stage", "Opportunity stage"),
    ("lead_source", "Where a lead came from"),
    ("lead_status", "A lead's status"),
    (
        "months_since_first",
        "Months since a cohort's first purchase (0 = the first month)",
    ),
    ("rfm_segment", "RFM segment of the customer, as of the last refresh"),
    (
        "clv_band",
        "Lower bound of the customer's lifetime-value band (0, 100, 250, 500, 1000, ...)",
    ),
    ("bought_with", "The other product of a frequently-bought-together pair"),
];

/// Only these values of a dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// A dimension other than `date` (dates are limited by `from` and `to`).
    pub dimension: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// A question in the semantic layer's terms (the body of `POST /api/v1/metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    /// Measures and ratios, by name.
    pub measures: Vec<String>,
    /// Dimensions to group by; `date` groups by the grain.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Grain of `date` (default month).
    #[serde(default)]
    pub grain: Grain,
    /// First day included.
    #[serde(default)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day included.
    #[serde(default)]
    pub to: Option<chrono::NaiveDate>,
    /// Only rows with these dimension values.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// A measure of the query to order by, largest first (ties, and by default everything, by
    /// the dimensions).
    #[serde(default)]
    pub order_by: Option<String>,
    /// Most rows returned (after ordering).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Why a metric query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// A measure that does not exist.
    #[error("unknown measure {0:?}; known: {1}")]
    UnknownMeasure(String, String),
    /// A dimension that does not exist.
    #[error("unknown dimension {0:?}; known: {1}")]
    UnknownDimension(String, String),
    /// No table has this measure with these dimensions and filters.
    #[error("{measure} cannot be broken down by {dimensions} (it is kept by {available})")]
    Unsupported {
        /// The measure.
        measure: String,
        /// The dimensions and filters asked for.
        dimensions: String,
        /// What its tables do have.
        available: String,
    },
    /// A query with no measures.
    #[error("ask for at least one measure")]
    NoMeasure,
    /// `order_by` names something the query does not ask for.
    #[error("order_by {0:?} is not one of the query's measures")]
    UnknownOrder(String),
    /// Running the query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// The answer: rows, the SQL that produced them, and the tables read.
#[derive(Debug)]
pub struct MetricResult {
    /// One row per combination of dimension values, ordered by them.
    pub result: QueryResult,
    /// The SQL that ran.
    pub sql: String,
    /// Tables that answered (rollups or facts).
    pub sources: Vec<&'static str>,
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Source {
    fn is_snapshot(&self) -> bool {
        self.day.is_none() && self.period.is_none()
    }

    fn dimension(&self, name: &str) -> Option<&'static str> {
        self.dimensions.iter().find(|(d, _)| *d == name).map(|(_, e)| *e)
    }

    fn can_answer(&self, query: &MetricQuery, grouped: &[&str]) -> bool {
        let dims_ok = grouped
            .iter()
            .copied()
            .chain(query.filters.iter().map(|f| f.dimension.as_str()))
            .all(|d| d == "date" || self.dimension(d).is_some());
        let uses_date = grouped.contains(&"date");
        let grain_ok = !uses_date || self.grains.is_none_or(|g| g.contains(&query.grain));
        // A per-grain rollup answers a date range only through its periods: with no date
        // dimension it would add periods up, which distinct counts do not allow.
        let period_ok = self.period.is_none() || uses_date;
        // A snapshot has one state, the last refresh: no dates to group by or limit.
        let snapshot_ok = !self.is_snapshot() || (!uses_date && query.from.is_none() && query.to.is_none());
        let aligned_ok = self.aligned.is_none_or(|grain| {
            query.from.is_none_or(|from| grain.starts(from))
                && query
                    .to
                    .is_none_or(|to| to.succ_opt().is_some_and(|next| grain.starts(next)))
        });
        dims_ok && grain_ok && period_ok && snapshot_ok && aligned_ok
    }

    /// `SELECT dims, measures FROM ... WHERE ... GROUP BY dims` for this source.
    fn select(&self, query: &MetricQuery, grouped: &[&str], measures: &[(&str, &str)]) -> String {
        let mut columns = Vec::new();
        for d in grouped {
            let expr = if *d == "date" {
                match (self.day, self.period) {
                    (_, Some((_, period))) => period.to_string(),
                    (Some(day), None) => format!("CAST(date_trunc('{}', {day}) AS DATE)", query.grain.name()),
                    (None, None) => unreachable!("can_answer keeps dates away from snapshots"),
                }
            } else {
                self.dimension(d).expect("checked by can_answer").to_string()
            };
            columns.push(format!("{expr} AS \"{d}\""));
        }
        for (name, expr) in measures {
            columns.push(format!("{expr} AS \"{name}\""));
        }
        let mut conditions: Vec<String> = Vec::new();
        if !self.filter.is_empty() {
            conditions.push(self.filter.to_string());
        }
        let day = match (self.day, self.period) {
            (_, Some((grain, period))) => {
                conditions.push(format!("{grain} = '{}'", query.grain.name()));
                Some(period)
            }
            (Some(day), None) => Some(day),
            (None, None) => None,
        };
        if let (Some(day), Some(from)) = (day, query.from) {
            conditions.push(format!("{day} >= DATE '{from}'"));
        }
        if let (Some(day), Some(to)) = (day, query.to) {
            conditions.push(format!("{day} <= DATE '{to}'"));
        }
        for filter in &query.filters {
            let expr = self.dimension(&filter.dimension).expect("checked by can_answer");
            let values: Vec<String> = filter.values.iter().map(|v| quote(v)).collect();
            conditions.push(format!("{expr} IN ({})", values.join(", ")));
        }
        let mut sql = format!("SELECT {} FROM {}", columns.join(", "), self.from);
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !grouped.is_empty() {
            let positions: Vec<String> = (1..=grouped.len()).map(|i| i.to_string()).collect();
            sql.push_str(&format!(" GROUP BY {}", positions.join(", ")));
        }
        sql
    }
}

/// The SQL for a metric query, and the tables it reads.
pub fn plan(query: &MetricQuery) -> Result<(String, Vec<&'static str>), MetricError> {
    if query.measures.is_empty() {
        return Err(MetricError::NoMeasure);
    }
    if let Some(order) = &query.order_by
        && !query.measures.contains(order)
    {
        return Err(MetricError::UnknownOrder(order.clone()));
    }
    let known_dimensions = || DIMENSIONS.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ");
    for d in query
        .dimensions
        .iter()
        .chain(query.filters.iter().map(|f| &f.dimension))
    {
        if !DIMENSIONS.iter().any(|(name, _)| name == d)
            || (d == "date" && query.filters.iter().any(|f| f.dimension == "date"))
        {
            return Err(MetricError::UnknownDimension(d.clone(), known_dimensions()));
        }
    }
    let grouped: Vec<&str> = query.dimensions.iter().map(String::as_str).collect();

    // Base measures needed, ratios expanded into their parts.
    let mut base: Vec<&'static Measure> = Vec::new();
    let mut need = |name: &str| -> Result<(), MetricError> {
        let measure = MEASURES.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = MEASURES
                .iter()
                .map(|m| m.name)
                .chain(RATIOS.iter().map(|r| r.name))
                .collect();
            MetricError::UnknownMeasure(name.to_string(), known.join(", "))
        })?;
        if !base.iter().any(|m| m.name == measure.name) {
            base.push(measure);
        }
        Ok(())
    };
    for name in &query.measures {
        match RATIOS.iter().find(|r| r.name == name) {
            Some(ratio) => {
                need(ratio.numerator)?;
                need(ratio.denominator)?;
            }
            None => need(name)?,
        }
    }

    // Each base measure from the first source that can answer the whole query; measures that share
    // a source are computed in one pass over it.
    let mut by_source: Vec<(&'static Source, Vec<(&str, &str)>)> = Vec::new();
    for measure in &base {
        let Some((source, expr)) = measure.answers.iter().find(|(s, _)| s.can_answer(query, &grouped)) else {
            let mut asked: Vec<String> = grouped.iter().map(|d| d.to_string()).collect();
            asked.extend(query.filters.iter().map(|f| format!("a filter on {}", f.dimension)));
            if grouped.contains(&"date") {
                asked.push(format!("{} grain", query.grain.name()));
            }
            if query.from.is_some() || query.to.is_some() {
                asked.push("a date range".into());
            }
            let available: Vec<String> = measure
                .answers
                .iter()
                .map(|(s, _)| {
                    let mut dims: Vec<&str> = if s.is_snapshot() { vec![] } else { vec!["date"] };
                    dims.extend(s.dimensions.iter().map(|(d, _)| *d));
                    let when = if s.is_snapshot() {
                        " (a snapshot of the last refresh, with no dates)"
                    } else {
                        ""
                    };
                    format!("{} by {}{when}", s.name, dims.join(", "))
                })
                .collect();
            return Err(MetricError::Unsupported {
                measure: measure.name.to_string(),
                dimensions: if asked.is_empty() {
                    "nothing".into()
                } else {
                    asked.join(", ")
                },
                available: available.join("; "),
            });
        };
        match by_source.iter_mut().find(|(s, _)| s.name == source.name) {
            Some((_, list)) => list.push((measure.name, expr)),
            None => by_source.push((source, vec![(measure.name, expr)])),
        }
    }

    let ctes: Vec<String> = by_source
        .iter()
        .enumerate()
        .map(|(i, (source, measures))| format!("p{i} AS ({})", source.select(query, &grouped, measures)))
        .collect();
    // Dimension values from whichever part has them; parts joined on every dimension.
    let dim = |d: &str| {
        let parts: Vec<String> = (0..by_source.len()).map(|i| format!("p{i}.\"{d}\"")).collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("COALESCE({})", parts.join(", "))
        }
    };
    let mut from = "p0".to_string();
    for i in 1..by_source.len() {
        if grouped.is_empty() {
            from.push_str(&format!(" CROSS JOIN p{i}"));
        } else {
            let on: Vec<String> = grouped
                .iter()
                // Parenthesised: the SQL parser binds `IS NOT DISTINCT FROM` looser than `AND`.
                .map(|d| format!("(p0.\"{d}\" IS NOT DISTINCT FROM p{i}.\"{d}\")"))
                .collect();
            from.push_str(&format!(" FULL JOIN p{i} ON {}", on.join(" AND ")));
        }
    }
    let part_of = |measure: &str| {
        let i = by_source
            .iter()
            .position(|(_, ms)| ms.iter().any(|(m, _)| *m == measure))
            .expect("every base measure has a part");
        format!("p{i}.\"{measure}\"")
    };
    let mut columns: Vec<String> = grouped.iter().map(|d| format!("{} AS \"{d}\"", dim(d))).collect();
    for name in &query.measures {
        let expr = match RATIOS.iter().find(|r| r.name == name) {
            Some(ratio) => {
                let share = format!(
                    "CAST({} AS DOUBLE) / NULLIF(CAST({} AS DOUBLE), 0)",
                    part_of(ratio.numerator),
                    part_of(ratio.denominator)
                );
                if ratio.complement {
                    format!("1 - {share}")
                } else {
                    share
                }
            }
            None => part_of(name),
        };
        columns.push(format!("{expr} AS \"{name}\""));
    }
    let mut sql = format!("WITH {} SELECT {} FROM {from}", ctes.join(", "), columns.join(", "));
    let mut order: Vec<String> = Vec::new();
    if let Some(measure) = &query.order_by {
        order.push(format!("\"{measure}\" DESC NULLS LAST"));
    }
    order.extend((1..=grouped.len()).map(|i| i.to_string()));
    if !order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    if let Some(limit) = query.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    Ok((sql, by_source.iter().map(|(s, _)| s.name).collect()))
}

/// Answer a metric query through [`Warehouse::sql`] (so under every query limit).
pub async fn query_metrics(warehouse: &Warehouse, query: &MetricQuery) -> Result<MetricResult, MetricError> {
    query_metrics_for(warehouse, query, "local", "cli").await
}

/// [`query_metrics`] on behalf of `user`, logged under their name. Any role may ask: the layer
/// composes the SQL itself and returns only aggregates, never a customer's personal data.
pub async fn query_metrics_for(
    warehouse: &Warehouse,
    query: &MetricQuery,
    user: &str,
    protocol: &str,
) -> Result<MetricResult, MetricError> {
    let (sql, sources) = plan(query)?;
    let caller = crate::access::Caller {
        user: user.to_string(),
        role: crate::access::Role::Admin,
    };
    // Composed here, deterministic, and asked again by every dashboard: answered from the
    // result cache until a table it reads gets a new version.
    let result = warehouse.sql_as(&sql, &caller, protocol).await?;
    Ok(MetricResult { result, sql, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(measures: &[&str], dimensions: &[&str]) -> MetricQuery {
        MetricQuery {
            measures: measures.iter().map(|s| s.to_string()).collect(),
            dimensions: dimensions.iter().map(|s| s.to_string()).collect(),
            ..MetricQuery::default()
        }
    }

    #[test]
    fn dashboard_questions_are_answered_from_rollups() {
        let (_, sources) = plan(&query(
            &["revenue", "gross_margin_rate", "average_order_value"],
            &["date", "region"],
        ))
        .unwrap();
        assert_eq!(sources, vec!["marts.sales_daily", "marts.orders_daily"]);
        let (_, sources) = plan(&query(&["active_customers", "churn_rate"], &["date", "segment"])).unwrap();
        assert_eq!(sources, vec!["marts.active_customers", "marts.churn_monthly"]);
    }

    #[test]
    fn product_detail_falls_back_to_the_facts_and_churn_by_product_is_refused() {
        // Orders are distinct counts, which no product rollup can add up.
        let (sql, sources) = plan(&query(&["revenue", "orders"], &["product"])).unwrap();
        assert_eq!(sources, vec!["marts.product_sales_monthly", "core.order_line"]);
        assert!(sql.contains("COUNT(DISTINCT l.order_id)"), "{sql}");
        let refused = plan(&query(&["churn_rate"], &["category"])).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("churned_customers cannot be broken down by category"),
            "{refused}"
        );
        let unknown = plan(&query(&["revenu"], &[])).unwrap_err();
        assert!(unknown.to_string().contains("unknown measure \"revenu\""), "{unknown}");
    }

    #[test]
    fn product_rollups_answer_only_ranges_of_whole_periods() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d);
        let ranged = |from, to, grain, dimensions: &[&str]| MetricQuery {
            from,
            to,
            grain,
            ..query(&["revenue", "units"], dimensions)
        };
        // Whole months (the dashboards' default range): the monthly rollup.
        let months = ranged(day(2025, 10, 1), day(2026, 9, 30), Grain::Month, &["product"]);
        assert_eq!(plan(&months).unwrap().1, vec!["marts.product_sales_monthly"]);
        // Whole weeks, Monday to Sunday, by week: the weekly rollup.
        let weeks = ranged(day(2026, 3, 30), day(2026, 9, 27), Grain::Week, &["date", "product"]);
        assert_eq!(plan(&weeks).unwrap().1, vec!["marts.product_sales_weekly"]);
        // A range cut mid-week or mid-month, or a channel the rollups do not keep: the facts.
        let cut = ranged(day(2026, 3, 31), day(2026, 9, 27), Grain::Week, &["date", "product"]);
        assert_eq!(plan(&cut).unwrap().1, vec!["core.order_line"]);
        let cut = ranged(day(2025, 10, 1), day(2026, 9, 29), Grain::Month, &["product"]);
        assert_eq!(plan(&cut).unwrap().1, vec!["core.order_line"]);
        let by_channel = ranged(
            day(2025, 10, 1),
            day(2026, 9, 30),
            Grain::Month,
            &["product", "channel"],
        );
        assert_eq!(plan(&by_channel).unwrap().1, vec!["core.order_line"]);
        // Weeks do not nest in months: a weekly question never reads the monthly rollup.
        let weekly_months = ranged(day(2025, 9, 1), day(2025, 9, 30), Grain::Week, &["date", "product"]);
        assert_eq!(plan(&weekly_months).unwrap().1, vec!["core.order_line"]);
    }

    #[test]
    fn distinct_customers_without_a_date_come_from_the_facts() {
        // Summing per-period distinct counts over a range would count a customer once per period:
        // the orders answer, and the lines only where a category is asked.
        let (_, sources) = plan(&query(&["active_customers"], &["region"])).unwrap();
        assert_eq!(sources, vec!["core.sales_order"]);
        let (_, sources) = plan(&query(&["active_customers"], &["category"])).unwrap();
        assert_eq!(sources, vec!["core.order_line"]);
    }

    #[test]
    fn snapshots_take_no_dates_and_say_so() {
        let (_, sources) = plan(&query(&["customers"], &["segment"])).unwrap();
        assert_eq!(sources, vec!["marts.customer_7p"]);
        let dated = MetricQuery {
            from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1),
            ..query(&["customers"], &["segment"])
        };
        let refused = plan(&dated).unwrap_err().to_string();
        assert!(
            refused.contains("a date range") && refused.contains("snapshot"),
            "{refused}"
        );
        let refused = plan(&query(&["lifetime_value"], &["date"])).unwrap_err().to_string();
        assert!(refused.contains("snapshot"), "{refused}");
    }

    #[test]
    fn ratios_across_sources_join_on_the_dimensions_and_order_by_a_measure() {
        let ordered = MetricQuery {
            order_by: Some("attributed_revenue".into()),
            limit: Some(5),
            ..query(&["attributed_revenue", "return_on_cost"], &["campaign"])
        };
        let (sql, sources) = plan(&ordered).unwrap();
        assert_eq!(sources, vec!["marts.campaign_daily", "core.campaign"]);
        assert!(
            sql.contains("FULL JOIN p1 ON (p0.\"campaign\" IS NOT DISTINCT FROM p1.\"campaign\")"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY \"attributed_revenue\" DESC NULLS LAST, 1 LIMIT 5"),
            "{sql}"
        );
        let wrong = MetricQuery {
            order_by: Some("revenue".into()),
            ..query(&["touches"], &[])
        };
        assert!(matches!(plan(&wrong), Err(MetricError::UnknownOrder(_))));
        // Control groups and targeted customers come from one pass over the campaign rollup.
        let (sql, sources) = plan(&query(&["conversion_rate", "control_conversion_rate"], &["channel"])).unwrap();
        assert_eq!(sources, vec!["marts.campaign_daily"]);
        assert!(
            sql.contains("SUM(g.control_conversions)") && !sql.contains("JOIN p1"),
            "{sql}"
        );
    }
}
