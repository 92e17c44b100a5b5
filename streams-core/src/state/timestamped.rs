//! Kafka's timestamped value layout: [`ValueAndTimestamp`] and its serde.

use std::fmt;

use crate::serde::{Serde, SerdeError, SerdeRef};

/// A value with the timestamp of the record that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Its timestamp (ms).
    pub timestamp: i64,
}

/// Kafka's timestamped-value layout: 8-byte big-endian timestamp, then the value's bytes.
pub struct TimestampedSerde<V> {
    inner: SerdeRef<V>,
}

impl<V> TimestampedSerde<V> {
    /// Wraps the value serde.
    pub fn new(inner: SerdeRef<V>) -> Self {
        Self { inner }
    }
}

impl<V> fmt::Debug for TimestampedSerde<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimestampedSerde")
    }
}

impl<V: 'static> Serde<ValueAndTimestamp<V>> for TimestampedSerde<V> {
    fn serialize_into(
        &self,
        value: &ValueAndTimestamp<V>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), SerdeError> {
        out.extend_from_slice(&value.timestamp.to_be_bytes());
        self.inner.serialize_into(&value.value, out)
    }
    fn deserialize(&self, bytes: &[u8]) -> std::result::Result<ValueAndTimestamp<V>, SerdeError> {
        if bytes.len() < 8 {
            return Err(SerdeError::WrongSize {
                type_name: "ValueAndTimestamp",
                expected: 8,
                actual: bytes.len(),
            });
        }
        let (ts, rest) = bytes.split_at(8);
        let mut arr = [0u8; 8];
        arr.copy_from_slice(ts);
        Ok(ValueAndTimestamp {
            value: self.inner.deserialize(rest)?,
            timestamp: i64::from_be_bytes(arr),
        })
    }
}
