//! Application configuration.
//!
//! [`StreamsConfig`] carries the settings that topologies and the test driver need today,
//! under Kafka Streams' property names (`application.id`, the error handlers). Each setter's
//! doc names its property and default.

use crate::time::InvalidTimestampPolicy;

/// What a source does with a record whose key or value does not deserialize.
///
/// Property: `default.deserialization.exception.handler` (`fail`, `log-and-continue`) and
/// `errors.dead.letter.queue.topic.name` for [`DeserializationHandler::DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop processing with an error naming topic, partition and offset (Kafka's default).
    #[default]
    Fail,
    /// Log the record, count it in the `skipped-records` metric, and go on.
    LogAndContinue,
    /// Send the original key and value bytes to a dead-letter topic, with the error in
    /// headers (`__streams.errors.*`), count it, and go on.
    DeadLetter {
        /// The dead-letter topic.
        topic: String,
    },
}

/// Header names on dead-lettered records (the names of Kafka's KIP-1034).
pub mod dlq_headers {
    /// The error's kind.
    pub const EXCEPTION: &str = "__streams.errors.exception";
    /// The error's message.
    pub const MESSAGE: &str = "__streams.errors.message";
    /// The source topic.
    pub const TOPIC: &str = "__streams.errors.topic";
    /// The source partition (decimal text).
    pub const PARTITION: &str = "__streams.errors.partition";
    /// The source offset (decimal text).
    pub const OFFSET: &str = "__streams.errors.offset";
}

/// The configuration of a streams application.
///
/// ```
/// use streams_core::config::{StreamsConfig, DeserializationHandler};
/// let config = StreamsConfig::new("activity")
///     .with_deserialization_handler(DeserializationHandler::LogAndContinue);
/// assert_eq!(config.application_id(), "activity");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    application_id: String,
    deserialization_handler: DeserializationHandler,
    invalid_timestamp_policy: InvalidTimestampPolicy,
}

impl StreamsConfig {
    /// A configuration for the application `application_id` (property `application.id`: it
    /// prefixes internal topics and names the consumer group and state directory).
    pub fn new(application_id: impl Into<String>) -> Self {
        Self {
            application_id: application_id.into(),
            deserialization_handler: DeserializationHandler::default(),
            invalid_timestamp_policy: InvalidTimestampPolicy::default(),
        }
    }

    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Sets the deserialization handler. Default: [`DeserializationHandler::Fail`].
    pub fn with_deserialization_handler(mut self, handler: DeserializationHandler) -> Self {
        self.deserialization_handler = handler;
        self
    }

    /// The deserialization handler.
    pub fn deserialization_handler(&self) -> &DeserializationHandler {
        &self.deserialization_handler
    }

    /// Sets what sources without their own policy do with invalid (negative) timestamps.
    /// Default: [`InvalidTimestampPolicy::Fail`] (Kafka's `FailOnInvalidTimestamp`).
    pub fn with_invalid_timestamp_policy(mut self, policy: InvalidTimestampPolicy) -> Self {
        self.invalid_timestamp_policy = policy;
        self
    }

    /// The default invalid-timestamp policy.
    pub fn invalid_timestamp_policy(&self) -> InvalidTimestampPolicy {
        self.invalid_timestamp_policy
    }

    /// Checks the configuration, naming the setting that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.application_id.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "application.id",
                detail: "must not be empty".into(),
            });
        }
        if !self
            .application_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::Invalid {
                setting: "application.id",
                detail: format!(
                    "`{}` may only contain ASCII letters, digits, '.', '_' and '-' (it names topics and directories)",
                    self.application_id
                ),
            });
        }
        if let DeserializationHandler::DeadLetter { topic } = &self.deserialization_handler {
            if topic.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "errors.dead.letter.queue.topic.name",
                    detail: "must not be empty".into(),
                });
            }
        }
        Ok(())
    }
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("invalid `{setting}`: {detail}")]
    Invalid {
        /// The property name.
        setting: &'static str,
        /// What is wrong.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_application_ids_name_the_setting() {
        let err = StreamsConfig::new("").validate().unwrap_err();
        assert!(err.to_string().contains("application.id"));
        let err = StreamsConfig::new("a b").validate().unwrap_err();
        assert!(err.to_string().contains("may only contain"));
        StreamsConfig::new("my-app_1.0").validate().unwrap();
    }
}
