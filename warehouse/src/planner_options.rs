//! Switches for the warehouse's own optimizer rules, so that plans with and without one can be
//! compared with one binary: `TRIBUTARY_PARTIAL_AGGREGATION=false` in the environment turns the
//! rule off for every session of the process (the warehouse's SQL is read-only, so its callers
//! cannot `SET` them; a bare DataFusion session with [`PlannerOptions::install`] can). Every rule
//! is on by default; turning one off changes how fast a query runs, never its answer.

use datafusion::common::config::{ConfigExtension, ExtensionOptions};
use datafusion::common::{Result, extensions_options};
use datafusion::prelude::SessionConfig;

extensions_options! {
    /// The warehouse's optimizer rules, each on or off.
    pub struct PlannerOptions {
        /// Aggregate the fact side of a join to a dimension before joining (`eager_aggregation`).
        pub eager_aggregation: bool, default = true
        /// Partial aggregations keyed by one word per group column (`partial_aggregate`).
        pub partial_aggregation: bool, default = true
        /// The final phase of the grouping behind a single `COUNT(DISTINCT ..)` folded into the
        /// partial phase above it (`partial_aggregate`, `PartialAggregateExec::try_fuse`).
        pub distinct_aggregation: bool, default = true
        /// The filter right below a partial aggregation applied by the aggregation, the rows it
        /// rejects grouped apart and dropped, instead of copying the passing rows out
        /// (`partial_aggregate`, `FusedFilter`).
        pub filtered_aggregation: bool, default = true
        /// Text copied into one buffer per batch where an operator keeps batches: a hash join's
        /// build side, the inputs of a merge of sorted streams (`compact_views`).
        pub compact_views: bool, default = true
        /// An in-memory table joined with itself on one key by sorting its rows by the key once
        /// and pairing the rows of each key (`self_join`), instead of a hash join.
        pub self_join: bool, default = true
        /// Decimal columns a partial aggregation only sums read from Parquet as the 64-bit
        /// integers they are stored as, instead of widened to 128 bits (`narrow_scan`).
        pub narrow_decimals: bool, default = true
        /// Text columns a partial aggregation groups by alone, or filters on by comparison with a
        /// short text, read from Parquet as the keys into each page's dictionary, instead of a
        /// string view per row (`narrow_scan`).
        pub dictionary_text: bool, default = true
    }
}

impl ConfigExtension for PlannerOptions {
    const PREFIX: &'static str = "tributary";
}

impl PlannerOptions {
    /// The defaults, with each option the environment sets (`TRIBUTARY_` and the option's name in
    /// capitals) applied; an invalid value is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        for (key, variable) in Self::variables() {
            if let Some(value) = std::env::var_os(&variable) {
                options
                    .set(&key, &value.to_string_lossy())
                    .map_err(|e| datafusion::common::DataFusionError::Configuration(format!("{variable}: {e}")))?;
            }
        }
        Ok(options)
    }

    /// Each option's name and the environment variable that sets it.
    pub fn variables() -> Vec<(String, String)> {
        Self::default()
            .entries()
            .into_iter()
            .map(|entry| {
                let variable = format!("{}_{}", Self::PREFIX, entry.key).to_uppercase();
                (entry.key, variable)
            })
            .collect()
    }

    /// The options in force for a plan being optimized (the defaults when the session has none).
    pub fn of(config: &datafusion::common::config::ConfigOptions) -> Self {
        config.extensions.get::<Self>().cloned().unwrap_or_default()
    }

    /// `config` with these options (in a session that allows it, `SET tributary.<option>`).
    pub fn install(self, config: SessionConfig) -> SessionConfig {
        config.with_option_extension(self)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::PlannerOptions;

    #[tokio::test]
    async fn options_are_set_per_session() {
        let ctx = SessionContext::new_with_config(PlannerOptions::default().install(SessionConfig::new()));
        let options = || PlannerOptions::of(ctx.state().config_options());
        assert!(options().partial_aggregation && options().eager_aggregation);
        ctx.sql("SET tributary.partial_aggregation = false").await.unwrap();
        assert!(!options().partial_aggregation && options().eager_aggregation);
        let error = ctx
            .sql("SET tributary.partial_aggregation = sometimes")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("sometimes"), "{error}");
        let variables: Vec<String> = PlannerOptions::variables().into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            variables,
            [
                "TRIBUTARY_EAGER_AGGREGATION",
                "TRIBUTARY_PARTIAL_AGGREGATION",
                "TRIBUTARY_DISTINCT_AGGREGATION",
                "TRIBUTARY_FILTERED_AGGREGATION",
                "TRIBUTARY_COMPACT_VIEWS",
                "TRIBUTARY_SELF_JOIN",
                "TRIBUTARY_NARROW_DECIMALS",
                "TRIBUTARY_DICTIONARY_TEXT"
            ]
        );
    }
}
