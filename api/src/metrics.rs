//! `tributary metrics`: the semantic layer from the command line, through the same function the
//! metrics API and the dashboards use.

use anyhow::{Context, bail};
use tributary_warehouse::semantic::{DIMENSIONS, Filter, Grain, MEASURES, MetricQuery, RATIOS, plan, query_metrics};

use crate::cli::{GrainArg, MetricsArgs};
use crate::config::Config;

/// Answer one metric query, or list the catalogue when no measure is given.
pub async fn metrics(config: &Config, args: MetricsArgs) -> anyhow::Result<()> {
    if args.measures.is_empty() {
        println!("Measures:");
        for m in MEASURES {
            println!("  {:<22} {}", m.name, m.description);
        }
        for r in RATIOS {
            println!("  {:<22} {}", r.name, r.description);
        }
        println!("Dimensions:");
        for (name, description) in DIMENSIONS {
            println!("  {name:<22} {description}");
        }
        return Ok(());
    }
    let date = |text: &Option<String>, flag: &str| -> anyhow::Result<Option<chrono::NaiveDate>> {
        text.as_deref()
            .map(|t| {
                chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .with_context(|| format!("--{flag} {t:?}: write YYYY-MM-DD"))
            })
            .transpose()
    };
    let mut filters = Vec::new();
    for filter in &args.filters {
        let Some((dimension, values)) = filter.split_once('=') else {
            bail!("--where {filter:?}: write DIMENSION=VALUE[,VALUE...]");
        };
        filters.push(Filter {
            dimension: dimension.trim().to_string(),
            values: values.split(',').map(|v| v.trim().to_string()).collect(),
        });
    }
    let query = MetricQuery {
        measures: args.measures.clone(),
        dimensions: args.by.clone(),
        grain: match args.grain {
            GrainArg::Day => Grain::Day,
            GrainArg::Week => Grain::Week,
            GrainArg::Month => Grain::Month,
            GrainArg::Quarter => Grain::Quarter,
            GrainArg::Year => Grain::Year,
        },
        from: date(&args.from, "from")?,
        to: date(&args.to, "to")?,
        filters,
        order_by: args.order_by.clone(),
        limit: args.limit,
    };
    let warehouse = config.warehouse()?;
    if args.explain {
        let (sql, sources) = plan(&query)?;
        eprintln!("-- reads {}", sources.join(", "));
        eprintln!("{sql}");
    }
    let answer = query_metrics(&warehouse, &query).await?;
    crate::sql::print(&answer.result, args.format)
}
