//! Limits that protect the warehouse from any one caller: memory, time, result size and
//! concurrency. Every front end applies the same limits, read from the `[limits]` section of the
//! configuration.

use serde::{Deserialize, Serialize};

/// Resource limits applied to every query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLimits {
    /// Memory pool for all running queries, in MiB; operators that can spill to disk do so beyond it.
    pub memory_mb: u64,
    /// Wall-clock limit for one query, from parsing to the last row sent, in seconds.
    pub query_timeout_secs: u64,
    /// Most rows one result may return.
    pub max_result_rows: u64,
    /// Most queries running at once; further ones wait.
    pub max_concurrent_queries: u32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_mb: 2048,
            query_timeout_secs: 60,
            max_result_rows: 1_000_000,
            max_concurrent_queries: 8,
        }
    }
}

/// A limit that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("limits.{field} must be at least 1")]
pub struct InvalidLimit {
    /// The offending field.
    pub field: &'static str,
}

impl QueryLimits {
    /// Check that every limit is usable.
    pub fn validate(&self) -> Result<(), InvalidLimit> {
        let fields = [
            ("memory_mb", self.memory_mb),
            ("query_timeout_secs", self.query_timeout_secs),
            ("max_result_rows", self.max_result_rows),
            ("max_concurrent_queries", self.max_concurrent_queries as u64),
        ];
        match fields.into_iter().find(|(_, v)| *v == 0) {
            Some((field, _)) => Err(InvalidLimit { field }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused() {
        assert!(QueryLimits::default().validate().is_ok());
        let limits = QueryLimits {
            max_result_rows: 0,
            ..QueryLimits::default()
        };
        assert_eq!(
            limits.validate(),
            Err(InvalidLimit {
                field: "max_result_rows"
            })
        );
    }
}
