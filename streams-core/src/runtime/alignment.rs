//! Event-time alignment of an instance's stream threads.
//!
//! Each thread processes its tasks oldest record first, so the tasks of one thread move
//! through event time together. Threads, though, run at their own pace: while catching up
//! a backlog one thread could get minutes of event time ahead of another, and where both
//! write to a repartition topic, the task reading it received the slower thread's records
//! later than any grace and dropped them. Kafka Streams aligns neither threads nor
//! instances; this runtime aligns the threads of an instance (docs/SEMANTICS.md).
//!
//! Every thread publishes its *floor*: the smallest timestamp its running tasks still have
//! to process (see `TaskManager::process`). A thread does not process a record more than
//! a second of event time younger than the smallest floor of the other threads; the thread
//! holding the smallest floor is never held back, so the threads always progress. A floor
//! not refreshed for [`STALE_MS`] (a thread in a long rebalance or commit) is ignored, so
//! that one stuck thread never stops the others.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sync::lock;

/// How long (wall clock, ms) a thread's published floor counts after it was published.
pub(crate) const STALE_MS: i64 = 2_000;

/// One thread's published floor and when it was published.
#[derive(Debug)]
struct Slot {
    floor: AtomicI64,
    /// Milliseconds since [`ThreadClocks::epoch`].
    at: AtomicI64,
}

/// The floors of an instance's stream threads (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct ThreadClocks {
    epoch: Instant,
    /// Bumped when a thread joins or leaves, so that the others refresh their lists.
    version: AtomicU64,
    members: Mutex<Vec<(usize, Arc<Slot>)>>,
}

impl Default for ThreadClocks {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            version: AtomicU64::new(0),
            members: Mutex::new(Vec::new()),
        }
    }
}

impl ThreadClocks {
    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Registers the thread `id`; it publishes through the returned clock and leaves when
    /// the clock is dropped.
    pub(crate) fn join(self: &Arc<Self>, id: usize) -> ThreadClock {
        let own = Arc::new(Slot {
            floor: AtomicI64::new(i64::MAX),
            at: AtomicI64::new(self.elapsed_ms()),
        });
        lock(&self.members).push((id, own.clone()));
        self.version.fetch_add(1, Ordering::SeqCst);
        ThreadClock {
            id,
            own,
            clocks: self.clone(),
            seen: u64::MAX,
            others: Vec::new(),
        }
    }
}

/// A thread's handle on [`ThreadClocks`].
#[derive(Debug)]
pub(crate) struct ThreadClock {
    id: usize,
    own: Arc<Slot>,
    clocks: Arc<ThreadClocks>,
    /// The registry version `others` was read at.
    seen: u64,
    others: Vec<Arc<Slot>>,
}

impl ThreadClock {
    /// Publishes this thread's floor (`None`: nothing pending, it holds no one back).
    pub(crate) fn publish(&self, floor: Option<i64>) {
        self.own
            .floor
            .store(floor.unwrap_or(i64::MAX), Ordering::Relaxed);
        self.own
            .at
            .store(self.clocks.elapsed_ms(), Ordering::Relaxed);
    }

    /// The smallest floor the other threads published within [`STALE_MS`] (`i64::MAX`:
    /// none).
    pub(crate) fn others(&mut self) -> i64 {
        let version = self.clocks.version.load(Ordering::SeqCst);
        if version != self.seen {
            self.others = lock(&self.clocks.members)
                .iter()
                .filter(|(id, _)| *id != self.id)
                .map(|(_, s)| s.clone())
                .collect();
            self.seen = version;
        }
        if self.others.is_empty() {
            return i64::MAX;
        }
        let now = self.clocks.elapsed_ms();
        self.others
            .iter()
            .filter(|s| now - s.at.load(Ordering::Relaxed) <= STALE_MS)
            .map(|s| s.floor.load(Ordering::Relaxed))
            .min()
            .unwrap_or(i64::MAX)
    }
}

impl Drop for ThreadClock {
    fn drop(&mut self) {
        lock(&self.clocks.members).retain(|(id, _)| *id != self.id);
        self.clocks.version.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_sees_the_smallest_fresh_floor_of_the_others_and_not_its_own() {
        let clocks = Arc::new(ThreadClocks::default());
        let mut a = clocks.join(1);
        assert_eq!(a.others(), i64::MAX, "alone");
        let b = clocks.join(2);
        let c = clocks.join(3);
        a.publish(Some(5));
        b.publish(Some(100));
        c.publish(None);
        assert_eq!(a.others(), 100);
        c.publish(Some(50));
        assert_eq!(a.others(), 50);
        drop(c);
        assert_eq!(a.others(), 100, "a thread that left holds no one back");
        // A floor published longer ago than STALE_MS no longer counts.
        b.own.at.store(-STALE_MS - 1, Ordering::Relaxed);
        assert_eq!(a.others(), i64::MAX);
    }
}
