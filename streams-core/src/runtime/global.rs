//! The global thread (Kafka Streams' `GlobalStreamThread`): loads every partition of each
//! global table's topic into its store before the stream threads start, then follows the
//! topics and writes a checkpoint every commit interval and on shutdown, so that a restart
//! resumes where it stopped (persistent stores) instead of reloading everything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::client::{Consumer, NoRebalanceListener, TopicPartition};
use crate::error::Result;
use crate::internals::global::{GlobalRecord, GlobalStores};
use crate::sync::lock;

use super::{Instance, StreamsError};

/// The global consumer and where it is in each partition.
pub(crate) struct GlobalFollower {
    consumer: Box<dyn Consumer>,
    stores: Arc<GlobalStores>,
    /// (topic, partition) -> the next offset to read.
    positions: HashMap<(String, u32), i64>,
}

impl GlobalFollower {
    /// Assigns every partition of the global topics, from the checkpoint or the start.
    pub(crate) fn new(instance: &Instance, stores: Arc<GlobalStores>) -> Result<Self> {
        let mut consumer = instance
            .clients
            .restore_consumer(&format!("{}-global-consumer", instance.client_prefix))?;
        let checkpoint = stores.read_checkpoint();
        let mut assignment = Vec::new();
        let mut positions = HashMap::new();
        for topic in stores.topics() {
            let n = instance.partitions.get(&topic).copied().unwrap_or(1);
            for p in 0..n {
                let tp = TopicPartition::new(topic.as_str(), p);
                let (low, high) = consumer.watermarks(&tp)?;
                let from = match checkpoint.get(&(topic.clone(), p)) {
                    Some(&o) if o >= low && o <= high => o,
                    Some(&o) => {
                        tracing::warn!(
                            topic = %topic,
                            partition = p,
                            checkpoint = o,
                            low,
                            high,
                            "global checkpoint outside the topic's offsets: reloading the partition"
                        );
                        low
                    }
                    None => low,
                };
                positions.insert((topic.clone(), p), from);
                assignment.push((tp, from));
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            stores,
            positions,
        })
    }

    /// Reads what the consumer returns within `timeout` into the stores.
    fn poll_once(&mut self, timeout: Duration) -> Result<usize> {
        let records = self.consumer.poll(timeout, &mut NoRebalanceListener)?;
        let n = records.len();
        let mut by_topic: HashMap<Arc<str>, Vec<GlobalRecord>> = HashMap::new();
        for r in records {
            let next = r.record.offset + 1;
            let pos = self
                .positions
                .entry((r.partition.topic.to_string(), r.partition.partition))
                .or_insert(next);
            *pos = (*pos).max(next);
            by_topic
                .entry(r.partition.topic.clone())
                .or_default()
                .push((r.record.offset, r.record.key, r.record.value));
        }
        for (topic, batch) in by_topic {
            self.stores.apply(&topic, batch)?;
        }
        Ok(n)
    }

    /// Loads every partition up to the end it has now (Kafka: the global stores are complete
    /// before stream processing starts). Stops early when the app is stopped.
    pub(crate) fn bootstrap(&mut self, instance: &Instance) -> Result<()> {
        let mut ends = HashMap::new();
        for (topic, p) in self.positions.keys() {
            let tp = TopicPartition::new(topic.as_str(), *p);
            ends.insert((topic.clone(), *p), self.consumer.watermarks(&tp)?.1);
        }
        let started = Instant::now();
        let mut loaded = 0usize;
        while ends
            .iter()
            .any(|(k, end)| self.positions.get(k).copied().unwrap_or(0) < *end)
        {
            if instance.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            loaded += self.poll_once(Duration::from_millis(100))?;
        }
        self.stores.write_checkpoint(&self.positions)?;
        tracing::info!(
            records = loaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "global stores loaded"
        );
        Ok(())
    }

    /// Follows the topics until the app stops, checkpointing every commit interval.
    fn run(mut self, instance: &Instance) -> Result<()> {
        let interval = Duration::from_millis(instance.config.commit_interval_ms());
        let mut last = Instant::now();
        while !instance.shared.stop.load(Ordering::SeqCst) {
            self.poll_once(Duration::from_millis(100))?;
            if last.elapsed() >= interval {
                self.stores.write_checkpoint(&self.positions)?;
                last = Instant::now();
            }
        }
        self.stores.write_checkpoint(&self.positions)?;
        self.consumer.close()?;
        Ok(())
    }
}

/// Starts the global thread with a bootstrapped follower.
pub(crate) fn spawn(instance: &Arc<Instance>, follower: GlobalFollower) -> Result<()> {
    let inst = instance.clone();
    let handle = std::thread::Builder::new()
        .name(format!("{}-GlobalStreamThread", instance.client_prefix))
        .spawn(move || {
            if let Err(e) = follower.run(&inst) {
                tracing::error!(error = %e, "global thread failed");
                let stopping = inst.shared.stop.load(Ordering::SeqCst);
                inst.shared.fail(format!("global thread: {e}"));
                if !stopping {
                    inst.shared.stop.store(true, Ordering::SeqCst);
                    inst.shared.transition(super::StreamsState::Error);
                }
            }
        })
        .map_err(|source| StreamsError::System {
            what: "cannot start the global thread",
            source,
        })?;
    lock(&instance.shared.inner).handles.push(handle);
    Ok(())
}
