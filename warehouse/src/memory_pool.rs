//! The memory pool all of a warehouse's queries share: DataFusion's fair spill pool, with room
//! held back for the operators that cannot spill.
//!
//! In DataFusion's `FairSpillPool` each spilling operator (a sort, a grouping) may fill its share
//! of whatever the non-spilling ones have not taken, and keeps it until it spills. An operator that
//! cannot spill and starts late then finds the pool full and fails the query, though the spilling
//! ones would have made room. It happened to a plain sort under a 12 MiB limit: the merge of the
//! two partitions' sorted runs (`SortPreservingMergeExec`, which cannot spill) asked for 1.2 MB
//! while one partition's sort still held its share, and 0.8 MB was left. Whether it failed
//! depended on which partition finished first. Here the spilling operators share the pool less a
//! headroom, which only the others may use. (That merge was also charged for far more than it
//! held, the buffers its text values share with the sorts' spill files: see `compact_views`.)

use std::fmt;
use std::sync::Mutex;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// Spilling operators share `size - headroom` fairly; the others take what is free, headroom
/// included, first come first served.
#[derive(Debug)]
pub struct QueryMemoryPool {
    size: usize,
    headroom: usize,
    state: Mutex<Usage>,
}

#[derive(Debug, Default)]
struct Usage {
    spilling_consumers: usize,
    spillable: usize,
    unspillable: usize,
}

impl QueryMemoryPool {
    /// A pool of `size` bytes with an eighth of it, at most 64 MiB, held back from the operators
    /// that can spill. A merge holds a batch per input, a hash join's build side its whole input:
    /// an eighth covers the merges of a few partitions' batches under the smallest pools, and at
    /// 64 MiB the spilling operators of a large pool lose little.
    pub fn new(size: usize) -> Self {
        Self::with_headroom(size, (size / 8).min(64 << 20))
    }

    fn with_headroom(size: usize, headroom: usize) -> Self {
        Self {
            size,
            headroom: headroom.min(size),
            state: Mutex::default(),
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        // The counters are updated in single statements; a panic elsewhere cannot leave them
        // half-written, so a poisoned lock still holds good numbers.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refuse(&self, reservation: &MemoryReservation, additional: usize, available: usize) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "Failed to allocate additional {} for {} with {} already allocated for this reservation - \
             {} remain available for the total memory pool: {self}",
            mebibytes(additional),
            reservation.consumer().name(),
            mebibytes(reservation.size()),
            mebibytes(available),
        ))
    }
}

fn mebibytes(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

impl fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fair spill pool of {} with {} held back from spilling operators",
            mebibytes(self.size),
            mebibytes(self.headroom)
        )
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "fair with headroom"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.usage().spilling_consumers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut usage = self.usage();
            usage.spilling_consumers = usage.spilling_consumers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut usage = self.usage();
        if reservation.consumer().can_spill() {
            usage.spillable += additional;
        } else {
            usage.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut usage = self.usage();
        if reservation.consumer().can_spill() {
            usage.spillable = usage.spillable.saturating_sub(shrink);
        } else {
            usage.unspillable = usage.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut usage = self.usage();
        if reservation.consumer().can_spill() {
            let shared = (self.size - self.headroom).saturating_sub(usage.unspillable);
            let share = shared / usage.spilling_consumers.max(1);
            if reservation.size() + additional > share {
                return Err(self.refuse(reservation, additional, share.saturating_sub(reservation.size())));
            }
            usage.spillable += additional;
        } else {
            let free = self.size.saturating_sub(usage.spillable + usage.unspillable);
            if additional > free {
                return Err(self.refuse(reservation, additional, free));
            }
            usage.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let usage = self.usage();
        usage.spillable + usage.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.size)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::execution::memory_pool::FairSpillPool;

    use super::*;

    const MIB: usize = 1 << 20;

    /// Two sorts fill their shares of a 12 MiB pool, then a merge that cannot spill asks for
    /// 1.2 MiB: the failure seen in the end-to-end spilling test.
    /// Answers with what the pool then holds.
    fn merge_after_two_full_sorts(pool: Arc<dyn MemoryPool>) -> Result<usize> {
        let sorts: Vec<MemoryReservation> = (0..2)
            .map(|i| {
                MemoryConsumer::new(format!("sort {i}"))
                    .with_can_spill(true)
                    .register(&pool)
            })
            .collect();
        for sort in &sorts {
            // A mebibyte at a time until the sort's share is full.
            while sort.try_grow(MIB).is_ok() {}
        }
        let merge = MemoryConsumer::new("merge").register(&pool);
        merge.try_grow(MIB + MIB / 5)?;
        Ok(pool.reserved())
    }

    #[test]
    fn an_operator_that_cannot_spill_finds_room_after_the_spilling_ones_filled_their_shares() {
        let fair: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(12 * MIB));
        assert!(
            merge_after_two_full_sorts(fair).is_err(),
            "DataFusion's pool has no headroom"
        );
        let ours: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::new(12 * MIB));
        // Each sort's share is (12 - 1.5) / 2 MiB, so each took 5; the merge 1.2 of the 2 left.
        assert_eq!(merge_after_two_full_sorts(ours).unwrap(), 10 * MIB + MIB + MIB / 5);
    }

    #[test]
    fn spilling_operators_share_what_the_others_leave_and_the_pool_never_overflows() {
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryMemoryPool::with_headroom(100, 20));
        let join = MemoryConsumer::new("join").register(&pool);
        join.try_grow(30).unwrap();
        let sort = MemoryConsumer::new("sort").with_can_spill(true).register(&pool);
        let grouping = MemoryConsumer::new("grouping").with_can_spill(true).register(&pool);
        // (100 - 20 - 30) / 2 = 25 each.
        sort.try_grow(25).unwrap();
        let refused = sort.try_grow(1).unwrap_err().to_string();
        assert!(
            refused.contains("Failed to allocate additional") && refused.contains("sort"),
            "{refused}"
        );
        grouping.try_grow(25).unwrap();
        // 20 left, all of it for the join; not a byte more.
        assert!(join.try_grow(21).is_err());
        join.try_grow(20).unwrap();
        assert_eq!(pool.reserved(), 100);
        // Once the join lets go, the spilling ones' shares grow again.
        join.free();
        sort.try_grow(15).unwrap();
        drop(grouping);
        sort.try_grow(40).unwrap();
        assert!(sort.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 80);
    }
}
