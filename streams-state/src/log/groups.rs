//! Consumer group offsets in the log engine: `<dir>/groups/<group>.offsets`, each written
//! atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::engine::*;
use super::error::LogError;
use super::files::*;
use super::topics::*;
use crate::error::StateError;
use crate::sync::lock;

impl LogEngine {
    pub(super) fn group_path(&self, group: &str) -> PathBuf {
        self.dir.join("groups").join(format!("{group}.offsets"))
    }

    pub(super) fn write_group(
        &self,
        group: &str,
        offsets: &GroupOffsets,
    ) -> Result<(), StateError> {
        self.write_group_with(group, offsets, true)
    }

    fn write_group_with(
        &self,
        group: &str,
        offsets: &GroupOffsets,
        sync: bool,
    ) -> Result<(), StateError> {
        let mut text = String::new();
        for ((t, p), o) in offsets {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        write_atomic_with(
            &self.group_path(group),
            &text,
            "writing group offsets",
            sync,
        )
    }

    /// Commits a transaction's offsets of `group`: synced when commits are; at recovery
    /// (`forward_only`) an offset never moves back (a later commit of the same partition
    /// by another producer may have passed it).
    pub(super) fn commit_txn_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, u32), i64>,
        forward_only: bool,
    ) -> Result<(), StateError> {
        let mut groups = lock(&self.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (tp, o) in offsets {
            let current = g.entry(tp.clone()).or_insert(*o);
            if !forward_only || *o > *current {
                *current = *o;
            }
        }
        self.write_group_with(group, g, self.config.commit_fsync)
    }

    /// Commits `group`'s offsets (the next offset to read, per partition) durably:
    /// the group's file is rewritten atomically.
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[(&str, u32, i64)],
    ) -> Result<(), StateError> {
        if !valid_topic(group) {
            return Err(err(LogError::InvalidGroupId(group.to_string())));
        }
        let mut groups = lock(&self.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (t, p, o) in offsets {
            g.insert(((*t).to_string(), *p), *o);
        }
        self.write_group(group, g)
    }

    /// The offset `group` committed for a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<i64> {
        lock(&self.groups)
            .get(group)
            .and_then(|g| g.get(&(topic.to_string(), partition)).copied())
    }

    /// Every group with committed offsets, by name.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = lock(&self.groups).keys().cloned().collect();
        groups.sort();
        groups
    }

    /// Every offset `group` committed, as (topic, partition, offset) in order; `None` if the
    /// group is unknown.
    pub fn group_offsets(&self, group: &str) -> Option<Vec<(String, u32, i64)>> {
        lock(&self.groups)
            .get(group)
            .map(|g| g.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect())
    }
}
