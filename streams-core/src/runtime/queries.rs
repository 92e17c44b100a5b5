//! Interactive queries on a running instance: its stores, and which instance holds a key.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::snapshot::TaskState;

use super::*;

impl KafkaStreams {
    /// The group as interactive-query metadata sees it: announced by the threads when
    /// the clients' own view may be partial, else as the clients describe it.
    ///
    /// Announced views are corrected by what this instance knows for sure: the partitions
    /// its own threads hold now (their active tasks, restoring or running) are this
    /// instance's, and another client's announcement that claims one of them is from a past
    /// generation (with eager rebalances a partition changes owner only through a
    /// rebalance, after which every live member announces again): it is dropped, as
    /// [`membership`] drops announcements superseded by newer ones. A member that left or
    /// died thus disappears with the first announcement, or local assignment, of the
    /// rebalance that removed it.
    pub(super) fn query_group(&self, instance: &Instance) -> Vec<crate::client::GroupMember> {
        let inner = lock(&self.shared.inner);
        if instance.announcements.is_none() {
            return inner.group.clone();
        }
        let local: Vec<crate::client::GroupMember> = inner
            .threads
            .values()
            .map(|t| crate::client::GroupMember {
                member_id: t.snapshot.name.clone(),
                client_id: t.snapshot.name.clone(),
                assignment: instance.topic_partitions_of(
                    t.snapshot
                        .tasks
                        .iter()
                        .filter(|task| {
                            matches!(
                                task.state,
                                TaskState::Created | TaskState::Restoring | TaskState::Running
                            )
                        })
                        .map(|task| task.id),
                ),
            })
            .collect();
        membership::with_local(&inner.announced, &instance.client_prefix, local)
    }

    /// The partitions of store `store`'s sub-topology (its number, and how many
    /// partitions it has), or `None` for a global store (and `Err` for no such store).
    pub(super) fn store_layout(
        &self,
        instance: &Instance,
        store: &str,
    ) -> Result<Option<(usize, u32)>> {
        if self
            .topology
            .inner
            .global_stores
            .iter()
            .any(|g| g.name == store)
        {
            return Ok(None);
        }
        let sub = subtopology_of(instance, store)?;
        Ok(Some((sub, instance.subtopology_partitions(sub))))
    }

    /// Where the partitions (tasks) of the store `store` stand on this instance: how many
    /// the store has in all, which run here (the views of this instance cover them), which
    /// are assigned here but restoring, and which this instance keeps standbys of. A
    /// global store runs every partition of its topic on every instance.
    ///
    /// Merged answers (one part per instance) are complete only when the parts cover every
    /// partition (see [`Coverage`](crate::query::Coverage)).
    pub fn store_partitions(&self, store: &str) -> Result<crate::query::StorePartitions> {
        let instance = self.instance()?;
        let Some((sub, total)) = self.store_layout(instance, store)? else {
            let topic = self
                .topology
                .inner
                .global_stores
                .iter()
                .find(|g| g.name == store)
                .map(|g| g.topic.clone())
                .unwrap_or_default();
            let n = instance.partitions.get(&topic).copied().unwrap_or(1);
            return Ok(crate::query::StorePartitions {
                store: store.to_string(),
                partitions: n,
                running: (0..n).collect(),
                restoring: Vec::new(),
                standby: Vec::new(),
            });
        };
        let running: Vec<u32> = lock(&instance.queryable)
            .iter()
            .filter(|(id, stores)| {
                id.subtopology as usize == sub && stores.iter().any(|e| e.name() == store)
            })
            .map(|(id, _)| id.partition)
            .collect();
        let mut restoring = Vec::new();
        let mut standby = Vec::new();
        for t in self.metrics().tasks() {
            if t.id.subtopology as usize != sub || running.contains(&t.id.partition) {
                continue;
            }
            match t.state {
                TaskState::Created | TaskState::Restoring | TaskState::Running => {
                    restoring.push(t.id.partition);
                }
                TaskState::Standby => standby.push(t.id.partition),
                TaskState::Suspended => {}
            }
        }
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v.dedup();
            v
        };
        Ok(crate::query::StorePartitions {
            store: store.to_string(),
            partitions: total,
            running: sorted(running),
            restoring: sorted(restoring),
            standby: sorted(standby),
        })
    }

    pub(super) fn instance(&self) -> Result<&Arc<Instance>> {
        self.instance
            .as_ref()
            .ok_or_else(|| StreamsError::StoreAccess {
                store: String::new(),
                detail: "the app is not started".into(),
            })
    }

    /// A view over the store `name` of each running task that has it.
    fn store_view<T: crate::query::TaskStoresView>(&self, name: &str) -> Result<T> {
        let (entries, partitions) = self.store_entries(name)?;
        T::over(name, &entries, partitions)
    }

    /// The store `name` of each running task that has it, and the partitions they cover
    /// (a global store covers every partition of its topic).
    pub(super) fn store_entries(
        &self,
        name: &str,
    ) -> Result<(Vec<crate::state::StoreEntry>, Vec<u32>)> {
        let instance = self.instance()?;
        if let Some(g) = instance.global_entries.iter().find(|e| e.name() == name) {
            let all = self.store_partitions(name).map(|p| p.running)?;
            return Ok((vec![g.clone()], all));
        }
        let mut entries = Vec::new();
        let mut partitions = Vec::new();
        for (id, stores) in lock(&instance.queryable).iter() {
            for e in stores.iter().filter(|e| e.name() == name) {
                entries.push(e.clone());
                partitions.push(id.partition);
            }
        }
        Ok((entries, partitions))
    }

    /// A read-only view of the key-value store `name` over this instance's running tasks
    /// (Kafka Streams' `store(StoreQueryParameters)`). Keys of tasks running elsewhere, or
    /// restoring here, are not in it: the view lists the partitions it covers
    /// ([`partitions`](crate::query::KeyValueStoreView::partitions)); see
    /// [`query_metadata_for_key`](Self::query_metadata_for_key) and
    /// [`store_partitions`](Self::store_partitions).
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::KeyValueStoreView<K, V>> {
        self.store_view(name)
    }

    /// A read-only view of the window store `name` over this instance's running tasks.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::WindowStoreView<K, V>> {
        self.store_view(name)
    }

    /// A read-only view of the session store `name` over this instance's running tasks.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<crate::query::SessionStoreView<K, V>> {
        self.store_view(name)
    }

    /// Every instance of the app in the group, with its `application.server`, the stores
    /// of its tasks and its input partitions (Kafka Streams' `metadataForAllStreamsClients`),
    /// as of the last rebalance this instance saw: live members only (a member that left
    /// or died is gone with the first announcement of the rebalance that removed it), this
    /// instance included as soon as it holds tasks.
    pub fn metadata_for_all_clients(&self) -> Result<Vec<crate::query::StreamsMetadata>> {
        let instance = self.instance()?;
        let group = self.query_group(instance);
        let mut by_instance: BTreeMap<String, crate::query::StreamsMetadata> = BTreeMap::new();
        for m in group {
            let name = instance_of(&m.client_id);
            let entry =
                by_instance
                    .entry(name.clone())
                    .or_insert_with(|| crate::query::StreamsMetadata {
                        host: host_of(&name),
                        instance: name.clone(),
                        state_stores: Vec::new(),
                        topic_partitions: Vec::new(),
                    });
            for tp in m.assignment {
                if let Some(&sub) = instance.source_of.get(&*tp.topic) {
                    for s in instance.store_names(sub) {
                        if !entry.state_stores.contains(&s) {
                            entry.state_stores.push(s);
                        }
                    }
                }
                entry.topic_partitions.push(tp);
            }
        }
        Ok(by_instance.into_values().collect())
    }

    /// Where `key` of the store `store` lives: its partition, and the live instance
    /// running its task (Kafka Streams' `queryMetadataForKey`), `None` while the task
    /// moves. `key_serde` must be the store's key serde: the partition is murmur2 of the
    /// serialized key, as the producer chose it. Whether the owner can answer yet (its task
    /// may still be restoring) only it knows: on this instance,
    /// [`store_partitions`](Self::store_partitions) and the views'
    /// [`covers`](crate::query::KeyValueStoreView::covers) tell.
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        key_serde: &dyn crate::serde::Serde<K>,
    ) -> Result<crate::query::KeyQueryMetadata> {
        let instance = self.instance()?;
        let sub = subtopology_of(instance, store)?;
        let topics: Vec<&String> = instance
            .source_of
            .iter()
            .filter(|(_, s)| **s == sub)
            .map(|(t, _)| t)
            .collect();
        let n = instance.subtopology_partitions(sub);
        let bytes = key_serde
            .serialize(key)
            .map_err(|source| StreamsError::Serialization {
                which: "key",
                target: store.to_string(),
                source,
            })?;
        let partition = crate::partitioner::partition_for_key(&bytes, n);
        let group = self.query_group(instance);
        let active_host = group
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|tp| tp.partition == partition && topics.iter().any(|t| **t == *tp.topic))
            })
            .and_then(|m| host_of(&instance_of(&m.client_id)));
        Ok(crate::query::KeyQueryMetadata {
            active_host,
            standby_hosts: Vec::new(),
            partition,
        })
    }
}

/// The subtopology that holds the store `store`.
fn subtopology_of(instance: &Instance, store: &str) -> Result<usize> {
    instance
        .store_subtopology(store)
        .ok_or_else(|| StreamsError::StoreAccess {
            store: store.to_string(),
            detail: "no such store in this topology".into(),
        })
}
