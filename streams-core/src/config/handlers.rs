//! What the app does with records it cannot read or cannot deliver: the deserialization and
//! production handlers, and the headers of dead-lettered records.

/// What the app does with an output record the producer cannot deliver (after the
/// producer's own retries, which `producer.delivery.timeout.ms` / `message.timeout.ms`
/// bound). Property `production.exception.handler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductionHandler {
    /// Fail the stream thread with an error naming the topic, partition and cause (Kafka's
    /// `DefaultProductionExceptionHandler`; property value `fail`). The records since the
    /// last commit are processed again after a restart (at-least-once).
    #[default]
    Fail,
    /// Log the failure, count the record in the thread's `production_errors_skipped`
    /// metric, and go on (property value `continue`): the record is lost.
    Continue,
}

/// What the app does when a processor fails on a record or in a punctuation: a
/// [`Processor`](crate::processor::Processor)'s `process` or `punctuate` returning
/// [`StreamsError::Processor`](crate::error::StreamsError::Processor). Property
/// `processing.exception.handler` (KIP-1033).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingHandler {
    /// Fail the stream thread with the processor's error (Kafka's
    /// `LogAndFailProcessingExceptionHandler`; property value `log_and_fail`). The
    /// uncaught-error handler decides what follows.
    #[default]
    Fail,
    /// Log the failure with the record's topic, partition and offset, count it in the
    /// task's `dropped_records` metric, and go on (Kafka's
    /// `LogAndContinueProcessingExceptionHandler`; property value `log_and_continue`): the
    /// record goes no further from the failing processor; what it or others forwarded
    /// before failing stays sent.
    LogAndContinue,
}

/// What a source does with a record whose key or value does not deserialize.
///
/// Properties: `deserialization.exception.handler` (`log_and_fail`, `log_and_continue`) and
/// `errors.dead.letter.queue.topic.name` for [`DeserializationHandler::DeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop processing with an error naming topic, partition and offset (Kafka's default,
    /// `log_and_fail`).
    #[default]
    Fail,
    /// Log the record, count it in the `skipped-records` metric, and go on
    /// (`log_and_continue`).
    LogAndContinue,
    /// Send the original key and value bytes to a dead-letter topic, with the error in
    /// headers (`__streams.errors.*`), count it, and go on (`log_and_continue` with
    /// `errors.dead.letter.queue.topic.name`).
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
