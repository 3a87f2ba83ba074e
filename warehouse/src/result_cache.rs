//! Answers kept while the tables they read are unchanged, for every query that goes through
//! [`crate::engine::Warehouse::query`] (the queries the API composes itself: semantic-layer
//! questions, churn risks, forecasts; and the SQL that BI tools and analysts send). A dashboard asks the same few questions again and again
//! between two refreshes; each answer is checked against the newest commit of every table it read
//! (one directory listing per table), so an answer is never older than the tables, and a role's
//! answer is never given to another role (masks differ). SQL that calls a function whose answer
//! may change between calls (`now()`, `random()`) is never kept, nor is SQL on anything but
//! warehouse tables (catalog views, `as_of`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::access::Role;
use crate::engine::QueryResult;
use crate::layout::Layer;

/// (layer, table, newest version) of each table a query read.
pub type TableVersions = Vec<(Layer, String, Option<u64>)>;

#[derive(Debug)]
struct Answer {
    versions: TableVersions,
    result: QueryResult,
    bytes: usize,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Entries {
    answers: HashMap<(Role, String), Answer>,
    bytes: usize,
    clock: u64,
}

/// Answers by role and SQL, bounded in bytes; the least recently used go first.
#[derive(Debug)]
pub struct ResultCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl ResultCache {
    /// A cache of at most `capacity` bytes of results.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// The answer kept for `sql` as `role`, if the tables it read are still at `versions`.
    pub fn get(&self, role: Role, sql: &str, versions: &TableVersions) -> Option<QueryResult> {
        let mut entries = self.entries.lock().expect("never poisoned");
        entries.clock += 1;
        let clock = entries.clock;
        let answer = entries.answers.get_mut(&(role, sql.to_string()))?;
        if &answer.versions != versions {
            return None;
        }
        answer.last_used = clock;
        Some(answer.result.clone())
    }

    /// The largest answer kept: an eighth of the cache.
    pub fn largest_answer(&self) -> usize {
        self.capacity / 8
    }

    /// Keep an answer (unless it alone would take more than [`ResultCache::largest_answer`]).
    pub fn put(&self, role: Role, sql: &str, versions: TableVersions, result: &QueryResult) {
        let bytes: usize = result.batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>() + sql.len();
        if bytes > self.largest_answer() {
            return;
        }
        let mut entries = self.entries.lock().expect("never poisoned");
        entries.clock += 1;
        let last_used = entries.clock;
        if let Some(old) = entries.answers.insert(
            (role, sql.to_string()),
            Answer {
                versions,
                result: result.clone(),
                bytes,
                last_used,
            },
        ) {
            entries.bytes -= old.bytes;
        }
        entries.bytes += bytes;
        while entries.bytes > self.capacity {
            let Some(oldest) = entries
                .answers
                .iter()
                .min_by_key(|(_, a)| a.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(gone) = entries.answers.remove(&oldest) {
                entries.bytes -= gone.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::*;

    fn answer(rows: i64) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap();
        QueryResult {
            schema,
            batches: vec![batch],
            rows: rows as u64,
            elapsed: Duration::ZERO,
        }
    }

    fn at(version: u64) -> TableVersions {
        vec![(Layer::Marts, "sales_daily".into(), Some(version))]
    }

    #[test]
    fn an_answer_holds_while_its_tables_are_unchanged_and_for_its_role_only() {
        let cache = ResultCache::new(1 << 20);
        cache.put(Role::Viewer, "SELECT 1", at(3), &answer(10));
        assert_eq!(cache.get(Role::Viewer, "SELECT 1", &at(3)).unwrap().rows, 10);
        assert!(
            cache.get(Role::Viewer, "SELECT 1", &at(4)).is_none(),
            "a newer table version"
        );
        assert!(cache.get(Role::Admin, "SELECT 1", &at(3)).is_none(), "another role");
        assert!(cache.get(Role::Viewer, "SELECT 2", &at(3)).is_none(), "another query");
    }

    #[test]
    fn the_least_recently_used_answers_make_room() {
        let one = answer(1000);
        let size = one.batches[0].get_array_memory_size() + "q0".len();
        let cache = ResultCache::new(size * 8 + size / 2);
        for i in 0..8 {
            cache.put(Role::Admin, &format!("q{i}"), at(1), &one);
        }
        assert!(
            cache.get(Role::Admin, "q0", &at(1)).is_some(),
            "q0 is now the most recent"
        );
        cache.put(Role::Admin, "q8", at(1), &one);
        assert!(
            cache.get(Role::Admin, "q1", &at(1)).is_none(),
            "q1 was the least recent"
        );
        assert!(cache.get(Role::Admin, "q0", &at(1)).is_some());
        assert!(cache.get(Role::Admin, "q8", &at(1)).is_some());
        // Too big for the cache: not kept.
        cache.put(Role::Admin, "big", at(1), &answer(100_000));
        assert!(cache.get(Role::Admin, "big", &at(1)).is_none());
    }
}
