//! Kafka's default partitioner: murmur2 of the serialized key, made positive, modulo the
//! partition count. Records land exactly where a Kafka producer would put them. The hash lives
//! in `streams-state` (shared with its `streams` tool) and is re-exported here.

pub use streams_state::{murmur2, partition_for_key};

/// Picks the partition of a produced record like a Kafka producer: the record's own
/// partition if it has one, murmur2 of the key for keyed records, and round-robin (advancing
/// `round_robin`) for records with a null key.
pub(crate) fn choose_partition(
    explicit: Option<u32>,
    key: Option<&[u8]>,
    num_partitions: u32,
    round_robin: &mut u32,
) -> u32 {
    match (explicit, key) {
        (Some(p), _) => p,
        (None, Some(k)) => partition_for_key(k, num_partitions),
        (None, None) => {
            *round_robin = round_robin.wrapping_add(1);
            *round_robin % num_partitions.max(1)
        }
    }
}
