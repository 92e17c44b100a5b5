//! Topic administration on the embedded engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use streams_state::{CleanupPolicy, LogEngine, LogError, StateError, TopicConfig};

use crate::client::{Admin, ClientError, ClientResult, NewTopic, TopicPartition};

/// Topic administration on the embedded engine.
pub(super) struct EmbeddedAdmin {
    pub(super) engine: Arc<LogEngine>,
}

impl Admin for EmbeddedAdmin {
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()> {
        let mut config = TopicConfig::new(topic.partitions);
        if topic.compact {
            config.cleanup = CleanupPolicy::Compact;
        }
        match self.engine.create_topic(&topic.name, config) {
            Ok(()) => Ok(()),
            Err(StateError::Log(LogError::TopicExists(name))) => {
                Err(ClientError::TopicExists(name))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn topics(&self) -> ClientResult<BTreeMap<String, u32>> {
        Ok(self
            .engine
            .topics()
            .into_iter()
            .map(|(n, c)| (n, c.partitions))
            .collect())
    }

    fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        Ok(self.engine.delete_topic(topic)?)
    }

    fn delete_records(&self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        Ok(self
            .engine
            .delete_records(&partition.topic, partition.partition, offset)?)
    }
}
