//! The embedded engine's transaction coordinator: transactional ids with their producer id
//! and epoch, what each open transaction touched, and the durable commit decision.
//!
//! `<dir>/transactions.state` (rewritten atomically) holds the next producer id, every
//! transactional id's producer id and epoch, and, only between a commit's decision and its
//! completion, the transaction's partitions and group offsets. A transaction is committed
//! once that decision is durable: opening the engine after a crash completes it (markers,
//! offsets), and aborts every other transaction still open in any partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::error::LogError;
use super::files::{checked_text, with_checksum, write_atomic_with};
use super::txn::ProducerId;
use crate::error::StateError;
use crate::sync::lock;

/// A transactional id's state as [`LogEngine::transactions`](crate::LogEngine::transactions)
/// shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// No transaction open.
    Empty,
    /// A transaction is open: appends or offsets were added since the last commit or abort.
    Ongoing,
    /// A commit was decided and is being completed.
    PrepareCommit,
}

/// One transactional id (see [`LogEngine::transactions`](crate::LogEngine::transactions)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionStatus {
    /// The transactional id.
    pub transactional_id: String,
    /// Its current producer id and epoch.
    pub producer: ProducerId,
    /// Whether a transaction is open.
    pub state: TransactionState,
    /// The partitions the open transaction wrote to.
    pub partitions: Vec<(String, u32)>,
    /// The groups whose offsets the open transaction will commit.
    pub groups: Vec<String>,
}

/// What opening the engine did with transactions a crash left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransactionRecovery {
    /// Transactions whose commit was decided and which were completed (markers written,
    /// offsets committed).
    pub completed: u64,
    /// Open transactions aborted (an abort marker per partition they wrote to).
    pub aborted: u64,
}

/// A partition a transaction wrote to: topic, partition, the transaction's first offset.
pub(crate) type TxnPartition = (String, u32, i64);

/// Offsets by group, then (topic, partition).
pub(crate) type TxnOffsets = BTreeMap<String, BTreeMap<(String, u32), i64>>;

/// A transactional id's live state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) producer: ProducerId,
    /// The partitions the open transaction wrote to, with its first offset in each.
    pub(crate) partitions: BTreeMap<(String, u32), i64>,
    pub(crate) offsets: TxnOffsets,
    pub(crate) preparing: bool,
    /// The partitions of the last commit, whose markers are not synced yet.
    pub(crate) unsynced: BTreeSet<(String, u32)>,
}

impl Entry {
    /// Fails unless `producer` is this id's current producer.
    pub(crate) fn check(
        &self,
        transactional_id: &str,
        producer: ProducerId,
    ) -> Result<(), StateError> {
        if producer == self.producer {
            return Ok(());
        }
        Err(StateError::Log(LogError::ProducerFenced {
            transactional_id: transactional_id.to_string(),
            producer: producer.id,
            epoch: producer.epoch,
            current: self.producer.id,
            current_epoch: self.producer.epoch,
        }))
    }
}

/// What the state file holds per transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) producer: ProducerId,
    /// A decided commit: its partitions with the transaction's first offset in each, and
    /// its offsets (`None` otherwise).
    pub(crate) commit: Option<(Vec<TxnPartition>, TxnOffsets)>,
}

/// The coordinator (see the [module docs](self)).
pub(crate) struct Coordinator {
    path: PathBuf,
    /// The next producer id and the durable state, in file order. Locked after an entry,
    /// never before one.
    durable: Mutex<(i64, BTreeMap<String, Durable>)>,
    entries: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
}

/// Transactional ids are free text: the file stores them hex-encoded.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl Coordinator {
    /// Reads `<dir>/transactions.state` (none yet: no transactional id).
    pub(crate) fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("transactions.state");
        let damaged = |detail: String| {
            StateError::Log(LogError::DamagedTransactionState {
                path: path.display().to_string(),
                detail,
            })
        };
        let (next, durable) = match fs::read_to_string(&path) {
            Ok(text) => {
                if text.trim().is_empty() {
                    // Never written empty: the file was cut.
                    return Err(damaged("the file is empty".into()));
                }
                let body = checked_text(&text).map_err(damaged)?;
                decode(body).ok_or_else(|| damaged("a line does not parse".into()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, BTreeMap::new()),
            Err(source) => {
                return Err(StateError::Io {
                    store: path.display().to_string(),
                    action: "reading the transaction state",
                    source,
                });
            }
        };
        let entries = durable
            .iter()
            .map(|(id, d)| {
                (
                    id.clone(),
                    Arc::new(Mutex::new(Entry {
                        producer: d.producer,
                        partitions: BTreeMap::new(),
                        offsets: BTreeMap::new(),
                        preparing: false,
                        unsynced: BTreeSet::new(),
                    })),
                )
            })
            .collect();
        Ok(Self {
            path,
            durable: Mutex::new((next, durable)),
            entries: Mutex::new(entries),
        })
    }

    /// The decided commits the file holds (to complete after a crash).
    pub(crate) fn decided(&self) -> Vec<(String, Durable)> {
        lock(&self.durable)
            .1
            .iter()
            .filter(|(_, d)| d.commit.is_some())
            .map(|(id, d)| (id.clone(), d.clone()))
            .collect()
    }

    /// The epoch the file knows for a producer id (markers written at recovery carry it).
    pub(crate) fn epoch_of(&self, producer_id: i64) -> i16 {
        lock(&self.durable)
            .1
            .values()
            .find(|d| d.producer.id == producer_id)
            .map_or(0, |d| d.producer.epoch)
    }

    /// The live entry of `transactional_id`, if registered.
    pub(crate) fn entry(&self, transactional_id: &str) -> Result<Arc<Mutex<Entry>>, StateError> {
        lock(&self.entries)
            .get(transactional_id)
            .cloned()
            .ok_or_else(|| {
                StateError::Log(LogError::UnknownTransactionalId(
                    transactional_id.to_string(),
                ))
            })
    }

    /// The entry of `transactional_id`, created (without producer yet: id -1) if new.
    pub(crate) fn entry_or_new(&self, transactional_id: &str) -> Arc<Mutex<Entry>> {
        lock(&self.entries)
            .entry(transactional_id.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Entry {
                    producer: ProducerId { id: -1, epoch: -1 },
                    partitions: BTreeMap::new(),
                    offsets: BTreeMap::new(),
                    preparing: false,
                    unsynced: BTreeSet::new(),
                }))
            })
            .clone()
    }

    /// The next producer of `transactional_id` after `current`: the next epoch of the same
    /// id, or a new id (the first registration, or the epoch ran out).
    pub(crate) fn next_producer(&self, current: ProducerId) -> Result<ProducerId, StateError> {
        if current.id >= 0 && current.epoch < i16::MAX {
            return Ok(ProducerId {
                id: current.id,
                epoch: current.epoch + 1,
            });
        }
        let mut d = lock(&self.durable);
        let id = d.0;
        d.0 = id.checked_add(1).ok_or_else(|| {
            StateError::Log(LogError::DamagedTransactionState {
                path: self.path.display().to_string(),
                detail: "no producer id is left".into(),
            })
        })?;
        Ok(ProducerId { id, epoch: 0 })
    }

    /// Stores `transactional_id`'s state: durably with `sync`, else as far as a process
    /// crash is concerned.
    pub(crate) fn persist(
        &self,
        transactional_id: &str,
        state: Durable,
        sync: bool,
    ) -> Result<(), StateError> {
        let mut d = lock(&self.durable);
        d.1.insert(transactional_id.to_string(), state);
        let text = encode(d.0, &d.1);
        write_atomic_with(
            &self.path,
            &with_checksum(&text),
            "writing the transaction state",
            sync,
        )
    }

    /// Every transactional id with its state.
    pub(crate) fn statuses(&self) -> Vec<TransactionStatus> {
        let entries: Vec<(String, Arc<Mutex<Entry>>)> = lock(&self.entries)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<TransactionStatus> = entries
            .into_iter()
            .map(|(id, e)| {
                let e = lock(&e);
                TransactionStatus {
                    transactional_id: id,
                    producer: e.producer,
                    state: if e.preparing {
                        TransactionState::PrepareCommit
                    } else if e.partitions.is_empty() && e.offsets.is_empty() {
                        TransactionState::Empty
                    } else {
                        TransactionState::Ongoing
                    },
                    partitions: e.partitions.keys().cloned().collect(),
                    groups: e.offsets.keys().cloned().collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

fn encode(next: i64, txns: &BTreeMap<String, Durable>) -> String {
    let mut out = format!("next-producer-id {next}\n");
    for (id, d) in txns {
        let id = hex(id);
        out.push_str(&format!(
            "txn {id} {} {} {}\n",
            d.producer.id,
            d.producer.epoch,
            if d.commit.is_some() {
                "prepare-commit"
            } else {
                "empty"
            }
        ));
        if let Some((partitions, offsets)) = &d.commit {
            for (t, p, first) in partitions {
                out.push_str(&format!("partition {id} {t} {p} {first}\n"));
            }
            for (g, o) in offsets {
                for ((t, p), o) in o {
                    out.push_str(&format!("offset {id} {g} {t} {p} {o}\n"));
                }
            }
        }
    }
    out
}

fn decode(text: &str) -> Option<(i64, BTreeMap<String, Durable>)> {
    let mut next = 0;
    let mut txns: BTreeMap<String, Durable> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["next-producer-id", n] => next = n.parse().ok().filter(|n| *n >= 0)?,
            ["txn", id, pid, epoch, state] => {
                let commit = match *state {
                    "prepare-commit" => Some((Vec::new(), BTreeMap::new())),
                    "empty" => None,
                    _ => return None,
                };
                txns.insert(
                    unhex(id)?,
                    Durable {
                        producer: ProducerId {
                            id: pid.parse().ok().filter(|p| *p >= 0 && *p < next)?,
                            epoch: epoch.parse().ok().filter(|e| *e >= 0)?,
                        },
                        commit,
                    },
                );
            }
            ["partition", id, t, p, first] => {
                let (partitions, _) = txns.get_mut(&unhex(id)?)?.commit.as_mut()?;
                partitions.push(((*t).to_string(), p.parse().ok()?, first.parse().ok()?));
            }
            ["offset", id, g, t, p, o] => {
                let (_, offsets) = txns.get_mut(&unhex(id)?)?.commit.as_mut()?;
                offsets
                    .entry((*g).to_string())
                    .or_default()
                    .insert(((*t).to_string(), p.parse().ok()?), o.parse().ok()?);
            }
            [""] => {}
            _ => return None,
        }
    }
    Some((next, txns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_round_trips() {
        let mut txns = BTreeMap::new();
        txns.insert(
            "app-1 thread/2".to_string(),
            Durable {
                producer: ProducerId { id: 3, epoch: 7 },
                commit: None,
            },
        );
        let mut offsets = TxnOffsets::new();
        offsets
            .entry("g".into())
            .or_default()
            .insert(("in".into(), 2), 41);
        txns.insert(
            "b".to_string(),
            Durable {
                producer: ProducerId { id: 4, epoch: 0 },
                commit: Some((vec![("out".into(), 1, 5), ("cl".into(), 0, 0)], offsets)),
            },
        );
        let text = encode(5, &txns);
        assert_eq!(decode(&text), Some((5, txns)));
        // A producer id at or past the next one, or a negative epoch, is damage.
        assert_eq!(decode("next-producer-id 2\ntxn 61 2 0 empty"), None);
        assert_eq!(decode("next-producer-id 2\ntxn 61 1 -1 empty"), None);
        assert_eq!(decode("txn zz 1 1 empty"), None);
        assert_eq!(decode("garbage"), None);
    }
}
