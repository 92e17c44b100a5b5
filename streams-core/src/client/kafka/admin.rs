//! The admin client on librdkafka: topics, partition counts, delete-records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::{Admin, ClientError, ClientResult, NewTopic, TopicPartition};

use super::errors::*;
use super::partitions::*;
use super::settings::*;

/// The admin client's librdkafka context.
#[derive(Default)]
pub(super) struct AdminCtx {
    pub(super) diagnostics: Diagnostics,
}

impl ClientContext for AdminCtx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.diagnostics.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.diagnostics.error(&error, reason);
    }
}

/// Topic administration and metadata on librdkafka's admin client.
pub(super) struct KafkaAdmin {
    pub(super) admin: AdminClient<AdminCtx>,
    pub(super) settings: Arc<Settings>,
    /// Told once that the broker cannot delete records.
    pub(super) delete_records_unsupported: AtomicBool,
}

impl KafkaAdmin {
    pub(super) fn new(settings: Arc<Settings>) -> ClientResult<Self> {
        let admin =
            AdminClient::from_config_and_context(&settings.admin_config(), AdminCtx::default())
                .map_err(|e| config_error("admin client", &e))?;
        Ok(Self {
            admin,
            settings,
            delete_records_unsupported: AtomicBool::new(false),
        })
    }

    fn error(&self, operation: &str, e: &KafkaError) -> ClientError {
        client_error(
            operation,
            e,
            self.settings.timeout,
            &self.settings.bootstrap,
            &self.admin.inner().context().diagnostics,
        )
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.settings.timeout))
            .operation_timeout(Some(self.settings.timeout))
    }

    /// Every topic with its partition count.
    pub(super) fn metadata(&self, operation: &str) -> ClientResult<BTreeMap<String, u32>> {
        let deadline = Instant::now() + self.settings.timeout;
        let metadata = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .admin
                .inner()
                .fetch_metadata(None, left.max(Duration::from_millis(1)))
            {
                Ok(m) => break m,
                Err(e) if retriable(code_of(&e)) && Instant::now() + RETRY_BACKOFF < deadline => {
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(e) => return Err(self.error(operation, &e)),
            }
        };
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as u32))
            .collect())
    }
}

impl Admin for KafkaAdmin {
    fn create_topic(&self, topic: &NewTopic) -> ClientResult<()> {
        let partitions = i32::try_from(topic.partitions).map_err(|_| ClientError::Broker {
            operation: format!("creating topic `{}`", topic.name),
            detail: "too many partitions".into(),
        })?;
        let replication = topic
            .replication_factor
            .unwrap_or(self.settings.replication_factor);
        let retention = topic.retention_ms.map(|r| r.to_string());
        let mut new = RdNewTopic::new(
            &topic.name,
            partitions,
            TopicReplication::Fixed(i32::from(replication)),
        );
        if topic.compact {
            // A compacted topic with a time retention (window and session changelogs) is
            // also cleaned by time, as in Kafka Streams.
            let policy = if topic.retention_ms.is_some_and(|r| r > 0) {
                "compact,delete"
            } else {
                "compact"
            };
            new = new.set("cleanup.policy", policy);
        }
        if let Some(r) = &retention {
            new = new.set("retention.ms", r);
        }
        let operation = format!("creating topic `{}`", topic.name);
        let results = block_on(self.admin.create_topics([&new], &self.options()))
            .map_err(|e| self.error(&operation, &e))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(ClientError::TopicExists(name));
                }
                Err((_, code)) => {
                    return Err(self.error(&operation, &KafkaError::AdminOp(code)));
                }
            }
        }
        // Wait (within the bound) until the metadata shows it, so that what follows sees it.
        let deadline = Instant::now() + self.settings.timeout;
        while Instant::now() < deadline {
            if self.metadata(&operation)?.get(&topic.name) == Some(&topic.partitions) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(topic = %topic.name, "created, but not in the metadata yet");
        Ok(())
    }

    fn topics(&self) -> ClientResult<BTreeMap<String, u32>> {
        self.metadata("reading the topics' metadata")
    }

    fn delete_topic(&self, topic: &str) -> ClientResult<()> {
        let operation = format!("deleting topic `{topic}`");
        let results = block_on(self.admin.delete_topics(&[topic], &self.options()))
            .map_err(|e| self.error(&operation, &e))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(ClientError::UnknownTopic(name));
                }
                Err((_, code)) => return Err(self.error(&operation, &KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    fn delete_records(&self, partition: &TopicPartition, offset: i64) -> ClientResult<()> {
        if self.delete_records_unsupported.load(Ordering::Relaxed) {
            return Ok(());
        }
        let operation = format!("deleting the records of {partition} before offset {offset}");
        let tpl = tpl_with_offsets(&[(partition.clone(), offset)])?;
        let result = block_on(self.admin.delete_records(&tpl, &self.options())).and_then(|tpl| {
            match tpl.elements().first().map(|e| e.error()) {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) if unsupported(code_of(&e)) => {
                tracing::warn!(
                    error = %e,
                    "the broker cannot delete records: repartition topics keep their records \
                     until retention removes them"
                );
                self.delete_records_unsupported
                    .store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.error(&operation, &e)),
        }
    }
}

/// Runs a future to completion on this thread. The admin client's futures are completed by
/// its own polling thread and carry librdkafka's request timeout, so this never waits
/// unbounded; unlike a tokio runtime it also works inside async code.
pub(super) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
