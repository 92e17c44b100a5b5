//! Metadata, CreateTopics, DeleteTopics and FindCoordinator: one node (id 0) that leads
//! every partition and coordinates every group and transactional id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;

use super::codes;
use super::dispatch::str_bytes;
use super::server::State;
use crate::{CleanupPolicy, TopicConfig};

/// The one node's id.
pub(crate) const NODE_ID: i32 = 0;

/// The cluster id Metadata reports.
const CLUSTER_ID: &str = "streams-log-engine";

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// Metadata: the node, and every partition of the asked topics (all topics when none are
/// named) led by it. Topics are never created by a Metadata request.
pub(crate) fn metadata(state: &State, req: MetadataRequest, version: i16) -> MetadataResponse {
    let names: Vec<Option<String>> = match req.topics {
        // Version 0 asks for every topic with an empty list.
        Some(list) if !(version == 0 && list.is_empty()) => list
            .into_iter()
            .map(|t| t.name.map(|n| n.0.as_str().to_string()))
            .collect(),
        _ => state
            .engine
            .topics()
            .into_iter()
            .map(|(n, _)| Some(n))
            .collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| {
            let Some(name) = name else {
                // Asked by topic id: topics have none here.
                return MetadataResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicId.code());
            };
            let t = MetadataResponseTopic::default().with_name(Some(topic_name(&name)));
            match state.engine.topic_config(&name) {
                Some(config) => t.with_partitions(
                    (0..config.partitions)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p as i32)
                                .with_leader_id(NODE_ID.into())
                                .with_leader_epoch(-1)
                                .with_replica_nodes(vec![NODE_ID.into()])
                                .with_isr_nodes(vec![NODE_ID.into()])
                        })
                        .collect(),
                ),
                None => t.with_error_code(codes::code(ResponseError::UnknownTopicOrPartition)),
            }
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(NODE_ID.into())
                .with_host(str_bytes(&state.host))
                .with_port(state.port),
        ])
        .with_controller_id(NODE_ID.into())
        .with_topics(topics);
    if version >= 2 {
        response = response.with_cluster_id(Some(str_bytes(CLUSTER_ID)));
    }
    response
}

/// A topic's settings from a CreateTopics entry, or the error code and message.
fn topic_config(t: &create_topics_request::CreatableTopic) -> Result<TopicConfig, (i16, String)> {
    let partitions = if !t.assignments.is_empty() {
        t.assignments.len() as i32
    } else if t.num_partitions == -1 {
        1
    } else {
        t.num_partitions
    };
    let Ok(partitions) = u32::try_from(partitions) else {
        return Err((
            ResponseError::InvalidPartitions.code(),
            format!("{partitions} partitions"),
        ));
    };
    if partitions == 0 {
        return Err((
            ResponseError::InvalidPartitions.code(),
            "a topic needs at least one partition".into(),
        ));
    }
    if t.replication_factor > 1 {
        return Err((
            ResponseError::InvalidReplicationFactor.code(),
            format!(
                "replication factor {} is larger than the number of nodes (1): this server does not replicate",
                t.replication_factor
            ),
        ));
    }
    let mut config = TopicConfig::new(partitions);
    for c in &t.configs {
        let Some(value) = &c.value else { continue };
        let (name, value) = (c.name.as_str(), value.as_str());
        let bad = || {
            (
                ResponseError::InvalidConfig.code(),
                format!("invalid value `{value}` for {name}"),
            )
        };
        let number = || value.trim().parse::<i64>().map_err(|_| bad());
        match name {
            "cleanup.policy" => {
                let policies: Vec<&str> = value.split(',').map(str::trim).collect();
                if policies.iter().any(|p| !matches!(*p, "compact" | "delete")) {
                    return Err(bad());
                }
                config.cleanup = if policies.contains(&"compact") {
                    CleanupPolicy::Compact
                } else {
                    CleanupPolicy::Delete
                };
            }
            "retention.ms" => {
                let ms = number()?;
                config.log.retention_ms = (ms >= 0).then_some(ms);
            }
            "retention.bytes" => {
                let b = number()?;
                config.log.retention_bytes = u64::try_from(b).ok();
            }
            "segment.bytes" => {
                config.log.segment_bytes = u64::try_from(number()?).map_err(|_| bad())?;
            }
            "segment.ms" => config.log.segment_ms = Some(number()?),
            "delete.retention.ms" => config.delete_retention_ms = number()?,
            other => tracing::debug!(config = other, "topic setting ignored"),
        }
    }
    Ok(config)
}

/// CreateTopics: each topic with its partitions and the settings the engine knows
/// (cleanup.policy, retention.ms, retention.bytes, segment.bytes, segment.ms,
/// delete.retention.ms; others are ignored). A replication factor above 1 is refused.
pub(crate) fn create_topics(
    state: &State,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let outcome = topic_config(t).and_then(|config| {
                if req.validate_only {
                    if state.engine.topic_config(name).is_some() {
                        return Err((
                            ResponseError::TopicAlreadyExists.code(),
                            format!("topic `{name}` already exists"),
                        ));
                    }
                    return Ok(config);
                }
                state
                    .engine
                    .create_topic(name, config)
                    .map(|()| config)
                    .map_err(|e| {
                        (
                            codes::of(&e, ResponseError::UnknownServerError),
                            e.to_string(),
                        )
                    })
            });
            match outcome {
                Ok(config) => {
                    let r = result.with_error_code(codes::NONE);
                    if version >= 5 {
                        r.with_num_partitions(config.partitions as i32)
                            .with_replication_factor(1)
                    } else {
                        r
                    }
                }
                Err((code, message)) => {
                    let r = result.with_error_code(code);
                    if version >= 1 {
                        r.with_error_message(Some(str_bytes(&message)))
                    } else {
                        r
                    }
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// DeleteTopics: deletes each topic with its data and committed offsets.
pub(crate) fn delete_topics(state: &State, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let responses = req
        .topic_names
        .iter()
        .map(|name| {
            let result = DeletableTopicResult::default().with_name(Some(name.clone()));
            match state.engine.delete_topic(name.0.as_str()) {
                Ok(()) => {
                    state.producers.forget_topic(name.0.as_str());
                    result
                }
                Err(e) => result.with_error_code(codes::of(&e, ResponseError::UnknownServerError)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// FindCoordinator: this node, for groups (key type 0) and transactional ids (1).
pub(crate) fn find_coordinator(
    state: &State,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let response = FindCoordinatorResponse::default();
    if !matches!(req.key_type, 0 | 1) {
        return response
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_node_id((-1).into())
            .with_port(-1);
    }
    response
        .with_node_id(NODE_ID.into())
        .with_host(str_bytes(&state.host))
        .with_port(state.port)
}
