//! Who writes transactions and who reads them: a producer's identity ([`ProducerId`]) and a
//! reader's isolation level ([`Isolation`]).

/// A producer's identity in the log: its id and epoch (a producer that registers the same
/// transactional id again gets a higher epoch, which fences the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerId {
    /// The producer id, unique for the life of the engine.
    pub id: i64,
    /// The epoch of the transactional id it was given for.
    pub epoch: i16,
}

/// How a reader sees transactional records (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Every record up to the end, of open and aborted transactions too.
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset, never a record of an aborted transaction.
    ReadCommitted,
}
