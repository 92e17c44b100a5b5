//! The clients' settings: what `KafkaClients::new` reads from a `StreamsConfig`, with the
//! settings the framework forces and the librdkafka defaults it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

use super::{ClientError, ClientResult};
use crate::config::{ClientPrefix, ProcessingGuarantee, StreamsConfig};

/// Settings the runtime interprets itself: they are not given to librdkafka.
pub(super) const OWN_CONSUMER_SETTINGS: &[&str] = &["max.poll.records"];
/// How many records one [`Consumer::poll`] returns at most (Kafka's `max.poll.records`
/// default; settable as `consumer.max.poll.records`).
pub(super) const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// How long the group consumer keeps a watermark answer that shows lag.
pub(super) const WATERMARK_TTL: Duration = Duration::from_secs(1);
/// How long it keeps one that shows none (asked again soon: more may have arrived).
pub(super) const WATERMARK_TTL_AT_END: Duration = Duration::from_millis(50);
/// How long the first attempt to describe the group may take.
pub(super) const DESCRIBE_FIRST_TRY: Duration = Duration::from_secs(5);
/// Pause between retries of a retriable failure.
pub(super) const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// A transactional producer's `transaction.timeout.ms` unless configured: Kafka Streams'
/// exactly-once default, so that a crashed thread's open transaction stops holding back
/// `read_committed` readers after 10 s (librdkafka's own default is 60 s).
pub(super) const DEFAULT_TRANSACTION_TIMEOUT_MS: &str = "10000";
/// How long one attempt of `abort_transaction` may wait before the delivery reports of the
/// records it purged are served (see [`KafkaProducer`]'s `abort_transaction`).
pub(super) const ABORT_SLICE: Duration = Duration::from_millis(100);

/// What every client is made from.
pub(super) struct Settings {
    pub(super) bootstrap: String,
    pub(super) application_id: String,
    pub(super) timeout: Duration,
    pub(super) replication_factor: i16,
    pub(super) read_committed: bool,
    pub(super) clients: BTreeMap<ClientPrefix, BTreeMap<String, String>>,
}

impl Settings {
    pub(super) fn from_config(config: &StreamsConfig) -> ClientResult<Self> {
        if config.bootstrap_servers().is_empty() {
            return Err(ClientError::Broker {
                operation: "creating the Kafka clients".into(),
                detail: "bootstrap.servers is not set".into(),
            });
        }
        Ok(Self {
            bootstrap: config.bootstrap_servers().join(","),
            application_id: config.application_id().to_string(),
            timeout: Duration::from_millis(config.default_api_timeout_ms().max(1)),
            replication_factor: config.replication_factor(),
            read_committed: config.processing_guarantee() == ProcessingGuarantee::ExactlyOnceV2,
            clients: ClientPrefix::ALL
                .iter()
                .map(|c| (*c, config.client_properties(*c).clone()))
                .collect(),
        })
    }

    fn props(&self, client: ClientPrefix) -> impl Iterator<Item = (&String, &String)> {
        self.clients.get(&client).into_iter().flatten()
    }

    /// The setting `key` of a consumer (its specific prefix over `consumer.`).
    fn consumer_setting(&self, specific: ClientPrefix, key: &str) -> Option<&String> {
        self.clients
            .get(&specific)
            .and_then(|m| m.get(key))
            .or_else(|| self.clients.get(&ClientPrefix::Consumer)?.get(key))
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c.set("client.id", client_id);
        c.set_log_level(RDKafkaLogLevel::Warning);
        c
    }

    /// A consumer's configuration: ours, then the pass-through settings, then the ones the
    /// runtime depends on (overriding them is refused with a warning).
    pub(super) fn consumer_config(
        &self,
        specific: ClientPrefix,
        group_id: &str,
        client_id: &str,
    ) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("auto.offset.reset", "earliest");
        c.set("enable.partition.eof", "false");
        // Statistics feed the thread metrics (request latency, lag by fetch responses);
        // `consumer.statistics.interval.ms` changes the interval (0: off).
        c.set("statistics.interval.ms", "5000");
        c.set(
            "isolation.level",
            if self.read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        );
        for (k, v) in self
            .props(ClientPrefix::Consumer)
            .chain(self.props(specific))
        {
            if !OWN_CONSUMER_SETTINGS.contains(&k.as_str()) {
                c.set(k, v);
            }
        }
        let mut forced = vec![
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("partition.assignment.strategy", "range"),
            ("group.protocol", "classic"),
        ];
        // Under exactly_once_v2 every consumer (main, restore, global) must not see records
        // of open or aborted transactions: not overridable, as in Kafka Streams.
        if self.read_committed {
            forced.push(("isolation.level", "read_committed"));
        }
        // Static membership (`consumer.group.instance.id`, Kafka's KIP-345): each group
        // consumer needs its own id, so the configured one gets the stream thread's number,
        // as in Kafka Streams (`<id>-<n>`); consumers outside the group get none.
        if let Some(base) = c.get("group.instance.id").map(str::to_string) {
            if specific == ClientPrefix::MainConsumer {
                c.set("group.instance.id", static_member_id(&base, client_id));
            } else {
                c.remove("group.instance.id");
            }
        }
        for (k, v) in forced {
            force_setting(&mut c, "consumer", k, v);
        }
        c
    }

    pub(super) fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true");
        for (k, v) in self.props(ClientPrefix::Producer) {
            c.set(k, v);
        }
        c
    }

    /// A transactional producer's configuration: [`producer_config`](Self::producer_config)
    /// with Kafka Streams' `transaction.timeout.ms` default (overridable), then
    /// `transactional.id` and idempotence, which are not.
    pub(super) fn transactional_producer_config(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true");
        c.set("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS);
        for (k, v) in self.props(ClientPrefix::Producer) {
            c.set(k, v);
        }
        force_setting(&mut c, "producer", "transactional.id", transactional_id);
        force_setting(&mut c, "producer", "enable.idempotence", "true");
        c
    }

    pub(super) fn admin_config(&self) -> ClientConfig {
        let mut c = self.base(&format!("{}-admin", self.application_id));
        for (k, v) in self.props(ClientPrefix::Admin) {
            c.set(k, v);
        }
        c
    }

    pub(super) fn max_poll_records(&self, specific: ClientPrefix) -> ClientResult<usize> {
        match self.consumer_setting(specific, "max.poll.records") {
            None => Ok(DEFAULT_MAX_POLL_RECORDS),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ClientError::Broker {
                    operation: "configuring the consumer".into(),
                    detail: format!("max.poll.records `{v}` is not a positive number"),
                }),
            },
        }
    }
}

/// Sets `key` to the `value` the runtime depends on, warning when the configuration said
/// otherwise (the configured value is ignored).
pub(super) fn force_setting(c: &mut ClientConfig, client: &str, key: &str, value: &str) {
    if let Some(old) = c.get(key)
        && old != value
    {
        tracing::warn!(
            client,
            setting = key,
            value = old,
            used = value,
            "the runtime needs this client setting; the configured value is ignored"
        );
    }
    c.set(key, value);
}

/// The `group.instance.id` of one group consumer: the configured id and the stream thread's
/// number from the consumer's client id (`...-StreamThread-<n>-consumer`), else the whole
/// client id.
pub(super) fn static_member_id(base: &str, client_id: &str) -> String {
    let thread = client_id
        .rsplit_once("-StreamThread-")
        .map(|(_, rest)| rest.trim_end_matches("-consumer"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match thread {
        Some(n) => format!("{base}-{n}"),
        None => format!("{base}-{client_id}"),
    }
}
