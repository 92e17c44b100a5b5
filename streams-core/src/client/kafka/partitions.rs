//! Partition lists: ours to librdkafka's and back.

use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{ClientError, ClientResult, TopicPartition};

pub(super) fn partition_i32(tp: &TopicPartition) -> ClientResult<i32> {
    i32::try_from(tp.partition).map_err(|_| ClientError::Broker {
        operation: "addressing a partition".into(),
        detail: format!("partition {tp} is out of range"),
    })
}

pub(super) fn tpl_of(partitions: &[TopicPartition]) -> ClientResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, partition_i32(tp)?);
    }
    Ok(tpl)
}

pub(super) fn tpl_with_offsets(
    offsets: &[(TopicPartition, i64)],
) -> ClientResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, o) in offsets {
        tpl.add_partition_offset(&tp.topic, partition_i32(tp)?, Offset::Offset(*o))
            .map_err(|e| ClientError::Broker {
                operation: "addressing a partition".into(),
                detail: e.to_string(),
            })?;
    }
    Ok(tpl)
}

pub(super) fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .filter_map(|e| {
            u32::try_from(e.partition())
                .ok()
                .map(|p| TopicPartition::new(e.topic(), p))
        })
        .collect()
}
