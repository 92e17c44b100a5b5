//! Engine errors as Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::{LogError, StateError};

/// No error.
pub(crate) const NONE: i16 = 0;

/// The code of `e`'s kind.
pub(crate) fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The Kafka error code for an engine error. A fenced producer maps to `fenced`, which
/// depends on the request (INVALID_PRODUCER_EPOCH for Produce, PRODUCER_FENCED for the
/// transaction requests).
pub(crate) fn of(e: &StateError, fenced: ResponseError) -> i16 {
    let kind = match e {
        StateError::Log(l) => match l {
            LogError::InvalidTopicName(_) => ResponseError::InvalidTopicException,
            LogError::InvalidGroupId(_) => ResponseError::InvalidGroupId,
            LogError::InvalidTopicConfig { .. } => ResponseError::InvalidConfig,
            LogError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            LogError::UnknownTopic(_) | LogError::UnknownPartition { .. } => {
                ResponseError::UnknownTopicOrPartition
            }
            LogError::KeyRequired(_) => ResponseError::InvalidRecord,
            LogError::ProducerFenced { .. } => fenced,
            LogError::UnknownTransactionalId(_) => ResponseError::InvalidProducerIdMapping,
            LogError::DamagedTopic { .. }
            | LogError::DamagedSegment { .. }
            | LogError::DamagedTransactionState { .. } => ResponseError::KafkaStorageError,
        },
        StateError::Io { .. } | StateError::Corrupt { .. } | StateError::DiskFull { .. } => {
            ResponseError::KafkaStorageError
        }
        StateError::NotOpen { .. }
        | StateError::Engine { .. }
        | StateError::StateDir { .. }
        | StateError::NoStateDir { .. }
        | StateError::Changelog { .. }
        | StateError::InvalidArgument { .. } => ResponseError::UnknownServerError,
    };
    kind.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_the_kafka_codes_clients_act_on() {
        let fenced = StateError::Log(LogError::ProducerFenced {
            transactional_id: "t".into(),
            producer: 1,
            epoch: 0,
            current: 1,
            current_epoch: 1,
        });
        // Kafka's numbers, written out independently of the crate's table.
        assert_eq!(of(&fenced, ResponseError::ProducerFenced), 90);
        assert_eq!(of(&fenced, ResponseError::InvalidProducerEpoch), 47);
        assert_eq!(
            of(
                &StateError::Log(LogError::UnknownTopic("x".into())),
                ResponseError::ProducerFenced
            ),
            3
        );
        assert_eq!(
            of(
                &StateError::Log(LogError::TopicExists("x".into())),
                ResponseError::ProducerFenced
            ),
            36
        );
        assert_eq!(
            of(
                &StateError::Log(LogError::UnknownTransactionalId("x".into())),
                ResponseError::ProducerFenced
            ),
            49
        );
    }
}
