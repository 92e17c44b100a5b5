//! What a partition knows about transactions: which producers have one open (from which
//! offset) and which ranges were aborted (Kafka's producer state and aborted-transaction
//! index). Rebuilt from the batches when a partition opens.

use std::collections::BTreeMap;

use super::batch::{ATTR_COMMIT, ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader};
use super::txn::ProducerId;

/// One aborted transaction of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Aborted {
    producer: i64,
    first: i64,
    /// The offset of its abort marker.
    last: i64,
}

/// The transactions of one partition.
#[derive(Debug, Default)]
pub(super) struct TxnIndex {
    /// Producer id → first offset of its open transaction and the epoch of its latest batch.
    open: BTreeMap<i64, (i64, i16)>,
    /// Aborted transactions, in marker order.
    aborted: Vec<Aborted>,
}

impl TxnIndex {
    /// Accounts for a batch appended (or found on open) at the end of the partition.
    pub(crate) fn observe(&mut self, h: &BatchHeader) {
        let Some((p, attributes)) = h.producer else {
            return;
        };
        if attributes & ATTR_CONTROL != 0 {
            if let Some((first, _)) = self.open.remove(&p.id)
                && attributes & ATTR_COMMIT == 0
            {
                self.aborted.push(Aborted {
                    producer: p.id,
                    first,
                    last: h.base,
                });
            }
        } else if attributes & ATTR_TRANSACTIONAL != 0 {
            self.open
                .entry(p.id)
                .and_modify(|(_, epoch)| *epoch = p.epoch)
                .or_insert((h.base, p.epoch));
        }
    }

    /// Whether `producer` has an open transaction here.
    pub(crate) fn is_open(&self, producer: i64) -> bool {
        self.open.contains_key(&producer)
    }

    /// The first offset of the oldest open transaction.
    pub(crate) fn first_open(&self) -> Option<i64> {
        self.open.values().map(|(first, _)| *first).min()
    }

    /// Every open transaction: (producer id, first offset).
    pub(crate) fn open(&self) -> Vec<(i64, i64)> {
        self.open.iter().map(|(p, (o, _))| (*p, *o)).collect()
    }

    /// The producers with an open transaction (with the epoch of their latest batch), the
    /// oldest transaction first.
    pub(crate) fn open_producers(&self) -> Vec<ProducerId> {
        let mut out: Vec<(i64, ProducerId)> = self
            .open
            .iter()
            .map(|(id, (first, epoch))| {
                (
                    *first,
                    ProducerId {
                        id: *id,
                        epoch: *epoch,
                    },
                )
            })
            .collect();
        out.sort_by_key(|(first, p)| (*first, p.id));
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Whether the batch holds records of an aborted transaction.
    pub(crate) fn is_aborted(&self, h: &BatchHeader) -> bool {
        let Some((p, attributes)) = h.producer else {
            return false;
        };
        attributes & ATTR_TRANSACTIONAL != 0
            && attributes & ATTR_CONTROL == 0
            && self
                .aborted
                .iter()
                .rev()
                .any(|a| a.producer == p.id && a.first <= h.base && h.base < a.last)
    }
}
