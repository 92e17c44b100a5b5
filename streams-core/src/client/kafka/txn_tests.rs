//! Transactions on librdkafka's mock cluster, or on the Kafka cluster named by
//! `STREAMS_TEST_KAFKA` (then the assertions the mock cannot meet are made instead of its
//! documented gaps, and the fault-injection tests are skipped).

use super::errors::*;
use super::settings::*;
use super::*;
use crate::client::NoRebalanceListener;
use crate::config::{ProcessingGuarantee, StreamsConfig};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

struct Fixture {
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    bootstrap: String,
    suffix: String,
}

impl Fixture {
    fn new() -> Self {
        match std::env::var("STREAMS_TEST_KAFKA") {
            Ok(bootstrap) if !bootstrap.is_empty() => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                Self {
                    mock: None,
                    bootstrap,
                    suffix: format!("-{}-{nanos:x}", std::process::id()),
                }
            }
            _ => {
                let mock = MockCluster::new(1).unwrap();
                Self {
                    bootstrap: mock.bootstrap_servers(),
                    mock: Some(mock),
                    suffix: String::new(),
                }
            }
        }
    }

    fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// An exactly-once configuration (read_committed consumers) with test timings.
    fn config(&self, app: &str) -> StreamsConfig {
        StreamsConfig::new(self.name(app))
            .with_bootstrap_servers(self.bootstrap.split(','))
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2)
            .with_default_api_timeout(T)
            .with_client_property(ClientPrefix::Consumer, "session.timeout.ms", "6000")
            .with_client_property(ClientPrefix::Consumer, "heartbeat.interval.ms", "300")
            .with_client_property(ClientPrefix::Consumer, "fetch.wait.max.ms", "50")
    }

    fn clients(&self, config: &StreamsConfig) -> KafkaClients {
        KafkaClients::new(config).unwrap()
    }

    fn topic(&self, clients: &KafkaClients, base: &str, partitions: u32) -> String {
        let name = self.name(base);
        match &self.mock {
            Some(m) => m.create_topic(&name, partitions as i32, 1).unwrap(),
            None => clients
                .admin()
                .unwrap()
                .create_topic(&NewTopic::new(&name, partitions))
                .unwrap(),
        }
        name
    }

    fn mock(&self) -> &MockCluster<'static, DefaultProducerContext> {
        self.mock.as_ref().unwrap()
    }
}

fn record(topic: &str, partition: u32, value: &str) -> OutgoingRecord {
    OutgoingRecord {
        partition: TopicPartition::new(topic, partition),
        timestamp: 1_700_000_000_000,
        key: Some(value.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

/// The values in each partition of `topic`, read from the beginning until `expect`
/// records came (and half a second more, to see any extra one), or `T` passed.
fn read_back(
    clients: &KafkaClients,
    topic: &str,
    partitions: u32,
    expect: usize,
) -> BTreeMap<u32, Vec<String>> {
    let mut c = clients.restore_consumer("reader").unwrap();
    let assignment: Vec<(TopicPartition, i64)> = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), 0))
        .collect();
    c.assign(&assignment).unwrap();
    let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + T;
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline && settle.is_none_or(|s| Instant::now() < s) {
        for r in c
            .poll(Duration::from_millis(100), &mut NoRebalanceListener)
            .unwrap()
        {
            let value = String::from_utf8(r.record.value.unwrap()).unwrap();
            out.entry(r.partition.partition).or_default().push(value);
            n += 1;
        }
        if n >= expect && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    out
}

fn expected(values: &[(u32, &str)]) -> BTreeMap<u32, Vec<String>> {
    let mut m: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (p, v) in values {
        m.entry(*p).or_default().push((*v).to_string());
    }
    m
}

/// A group consumer of `topic` that joined its group (the mock waits 3 s before a new
/// group's first rebalance).
fn joined_consumer(
    clients: &KafkaClients,
    group: &str,
    topic: &str,
    partitions: usize,
) -> Box<dyn Consumer> {
    let mut c = clients.consumer(group, "member").unwrap();
    c.subscribe(&[topic.to_string()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.assignment().len() < partitions {
        assert!(Instant::now() < deadline, "the group never formed");
        c.poll(Duration::from_millis(100), &mut NoRebalanceListener)
            .unwrap();
    }
    c
}

fn txn_producer(clients: &KafkaClients, id: &str) -> Box<dyn Producer> {
    let mut p = clients.transactional_producer("producer", id).unwrap();
    assert!(p.is_transactional());
    p.init_transactions(T).unwrap();
    p
}

#[test]
fn exactly_once_configs_force_read_committed_and_the_transactional_id() {
    let base = StreamsConfig::new("app")
        .with_bootstrap_servers(["127.0.0.1:9092"])
        .with_client_property(
            ClientPrefix::Consumer,
            "isolation.level",
            "read_uncommitted",
        )
        .with_client_property(ClientPrefix::Producer, "transactional.id", "mine")
        .with_client_property(ClientPrefix::Producer, "enable.idempotence", "false");
    let eos = Settings::from_config(
        &base
            .clone()
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnceV2),
    )
    .unwrap();
    // Main, restore and (through the restore consumer) global consumers.
    for (client, group) in [
        (ClientPrefix::MainConsumer, "app"),
        (ClientPrefix::RestoreConsumer, "app-restore"),
    ] {
        let c = eos.consumer_config(client, group, "c");
        assert_eq!(
            c.get("isolation.level"),
            Some("read_committed"),
            "{client:?}"
        );
    }
    let alo = Settings::from_config(&base).unwrap();
    let c = alo.consumer_config(ClientPrefix::MainConsumer, "app", "c");
    assert_eq!(c.get("isolation.level"), Some("read_uncommitted"));
    let p = eos.transactional_producer_config("p", "app-StreamThread-1");
    assert_eq!(p.get("transactional.id"), Some("app-StreamThread-1"));
    assert_eq!(p.get("enable.idempotence"), Some("true"));
    assert_eq!(p.get("transaction.timeout.ms"), Some("10000"));
    let longer = Settings::from_config(&base.with_client_property(
        ClientPrefix::Producer,
        "transaction.timeout.ms",
        "30000",
    ))
    .unwrap();
    assert_eq!(
        longer
            .transactional_producer_config("p", "t")
            .get("transaction.timeout.ms"),
        Some("30000")
    );
}

#[test]
fn transactional_failures_map_to_the_reaction_the_runtime_needs() {
    use RDKafkaErrorCode as C;
    let f = |code: C, fatal: bool, retriable: bool, abortable: bool| TxnFailure {
        code: Some(code),
        fatal,
        retriable,
        abortable,
    };
    let cases = [
        // librdkafka's fatal "fenced by a newer instance", and the broker's codes.
        (f(C::Fenced, true, false, false), TxnReaction::Fenced),
        (
            f(C::ProducerFenced, true, false, false),
            TxnReaction::Fenced,
        ),
        (
            f(C::InvalidProducerEpoch, false, false, true),
            TxnReaction::Fenced,
        ),
        // KIP-447: offsets of a member the group moved on from (abortable in librdkafka).
        (
            f(C::IllegalGeneration, false, false, true),
            TxnReaction::Fenced,
        ),
        (
            f(C::UnknownMemberId, false, false, true),
            TxnReaction::Fenced,
        ),
        (
            f(C::FencedInstanceId, false, false, true),
            TxnReaction::Fenced,
        ),
        (
            f(C::TopicAuthorizationFailed, false, false, true),
            TxnReaction::Abort,
        ),
        (
            f(C::MessageSizeTooLarge, false, false, true),
            TxnReaction::Abort,
        ),
        (
            f(C::OperationTimedOut, false, true, false),
            TxnReaction::Retry,
        ),
        (
            f(C::CoordinatorNotAvailable, false, true, false),
            TxnReaction::Retry,
        ),
        (
            f(C::InvalidTransactionalState, true, false, false),
            TxnReaction::Fatal,
        ),
        (f(C::State, false, false, false), TxnReaction::Refused),
    ];
    for (failure, reaction) in cases {
        assert_eq!(txn_reaction(failure), reaction, "{failure:?}");
    }
    // Failures without librdkafka's flags: a flush that did not finish, a send refused
    // after a fatal error.
    let flush = TxnFailure::of(&KafkaError::Flush(C::OperationTimedOut));
    assert_eq!(txn_reaction(flush), TxnReaction::Retry);
    let fatal = TxnFailure::of(&KafkaError::MessageProduction(C::Fatal));
    assert_eq!(txn_reaction(fatal), TxnReaction::Fatal);
    let e = transaction_error("commit_transaction", "x".into(), flush, T, "b:9092");
    assert!(e.is_retriable() && !e.is_task_migrated(), "{e}");
    let e = transaction_error(
        "commit_transaction",
        "x".into(),
        f(C::Fenced, true, false, false),
        T,
        "b:9092",
    );
    assert!(matches!(e, ClientError::ProducerFenced { .. }) && e.is_task_migrated());
}

#[test]
fn a_committed_transaction_delivers_its_records_and_offsets_and_an_abort_does_not() {
    let fx = Fixture::new();
    let config = fx.config("txn-commit");
    let clients = fx.clients(&config);
    let input = fx.topic(&clients, "in", 2);
    let output = fx.topic(&clients, "out", 2);
    let group = config.application_id().to_string();
    let consumer = joined_consumer(&clients, &group, &input, 2);
    let metadata = consumer.group_metadata().unwrap();
    assert_eq!(metadata.group_id, group);
    assert!(metadata.generation >= 1, "{metadata:?}");
    assert!(!metadata.member_id.is_empty(), "{metadata:?}");
    assert!(metadata.kafka.is_some());
    // A consumer without group has no metadata.
    assert!(
        clients
            .restore_consumer("r")
            .unwrap()
            .group_metadata()
            .is_none()
    );

    let in0 = TopicPartition::new(input.as_str(), 0);
    let in1 = TopicPartition::new(input.as_str(), 1);
    let mut p = txn_producer(&clients, &fx.name("txn-commit-1"));
    p.begin_transaction().unwrap();
    let sent = [(0, "a"), (1, "b"), (0, "c")];
    for (partition, v) in sent {
        p.send(record(&output, partition, v)).unwrap();
    }
    p.send_offsets_to_transaction(&[(in0.clone(), 3), (in1.clone(), 1)], &metadata, T)
        .unwrap();
    p.commit_transaction(T).unwrap();
    assert_eq!(read_back(&clients, &output, 2, sent.len()), expected(&sent));
    let committed = consumer.committed(&[in0.clone(), in1.clone()]).unwrap();
    if fx.is_mock() {
        // The mock's TxnOffsetCommit answers without storing the offsets.
        assert_eq!(committed, vec![None, None]);
    } else {
        assert_eq!(committed, vec![Some(3), Some(1)]);
    }

    // Aborted: neither its offsets nor (for read_committed readers) its records count.
    p.begin_transaction().unwrap();
    p.send(record(&output, 1, "aborted")).unwrap();
    p.send_offsets_to_transaction(&[(in0.clone(), 9)], &metadata, T)
        .unwrap();
    p.abort_transaction(T).unwrap();
    p.poll().unwrap();
    let after = consumer.committed(&[in0.clone(), in1.clone()]).unwrap();
    assert_eq!(after, committed);

    // The producer goes on with the next transaction.
    p.begin_transaction().unwrap();
    p.send(record(&output, 1, "d")).unwrap();
    p.send_offsets_to_transaction(&[(in1.clone(), 2)], &metadata, T)
        .unwrap();
    p.commit_transaction(T).unwrap();
    if !fx.is_mock() {
        assert_eq!(
            consumer.committed(&[in0, in1]).unwrap(),
            vec![Some(3), Some(2)]
        );
    }
}

#[test]
fn an_abort_withdraws_queued_records_without_reporting_them_as_failed() {
    let fx = Fixture::new();
    // Records stay queued (5 s linger; librdkafka wants it below `message.timeout.ms`,
    // which follows `transaction.timeout.ms`) until the abort purges them.
    let config =
        fx.config("txn-abort")
            .with_client_property(ClientPrefix::Producer, "linger.ms", "5000");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 2);
    let mut p = txn_producer(&clients, &fx.name("txn-abort-1"));
    p.begin_transaction().unwrap();
    for i in 0..5 {
        p.send(record(&output, i % 2, &format!("withdrawn-{i}")))
            .unwrap();
    }
    p.poll().unwrap();
    let t0 = Instant::now();
    p.abort_transaction(T).unwrap();
    // Without taking the purged records' reports, librdkafka's abort waits out its
    // whole timeout.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    p.poll().unwrap();
    p.flush(T).unwrap();
    // A commit delivers at once, whatever the linger.
    p.begin_transaction().unwrap();
    let sent = [(0, "kept-1"), (1, "kept-2")];
    for (partition, v) in sent {
        p.send(record(&output, partition, v)).unwrap();
    }
    p.commit_transaction(T).unwrap();
    assert_eq!(read_back(&clients, &output, 2, sent.len()), expected(&sent));
}

#[test]
fn a_second_producer_with_the_same_transactional_id() {
    let fx = Fixture::new();
    let config = fx.config("txn-twice");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 1);
    let id = fx.name("txn-twice-1");
    let mut first = txn_producer(&clients, &id);
    first.begin_transaction().unwrap();
    first.send(record(&output, 0, "zombie")).unwrap();
    first.flush(T).unwrap();
    let mut second = txn_producer(&clients, &id);
    let committed = first.commit_transaction(T);
    if fx.is_mock() {
        // The mock gives every InitProducerId a new producer id instead of bumping the
        // epoch of the id's producer: nobody is fenced.
        committed.unwrap();
    } else {
        let e = committed.unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
        let e = first.send(record(&output, 0, "late")).unwrap_err();
        assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
    }
    second.begin_transaction().unwrap();
    second.send(record(&output, 0, "new")).unwrap();
    second.commit_transaction(T).unwrap();
}

/// A transactional producer whose group metadata comes from a consumer that never
/// joined (generation -1: offsets are taken without zombie checks).
fn unjoined_metadata(clients: &KafkaClients, group: &str) -> (Box<dyn Consumer>, GroupMetadata) {
    let c = clients.consumer(group, "member").unwrap();
    let m = c.group_metadata().unwrap();
    assert_eq!((m.group_id.as_str(), m.generation), (group, -1));
    (c, m)
}

#[test]
fn fencing_answers_of_the_broker_surface_as_producer_fenced() {
    let fx = Fixture::new();
    if !fx.is_mock() {
        return; // fault injection needs the mock
    }
    let config = fx.config("txn-fenced");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 1);
    let (_c, metadata) = unjoined_metadata(&clients, "txn-fenced");
    let offsets = [(TopicPartition::new(output.as_str(), 0), 1)];

    // The coordinator fences the commit: the producer is done for.
    let mut p = txn_producer(&clients, "fenced-1");
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "x")).unwrap();
    fx.mock().request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let e = p.commit_transaction(T).unwrap_err();
    assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
    assert!(e.is_task_migrated() && !e.is_fatal());
    let e = p.send(record(&output, 0, "y")).unwrap_err();
    assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
    let e = p.begin_transaction().unwrap_err();
    assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
    // A new producer with the same id takes over.
    let mut p = txn_producer(&clients, "fenced-1");
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "z")).unwrap();
    p.commit_transaction(T).unwrap();

    // A produce request refused for an old epoch (a zombie's write).
    let mut p = txn_producer(&clients, "fenced-2");
    p.begin_transaction().unwrap();
    fx.mock().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
    );
    p.send(record(&output, 0, "x")).unwrap();
    let e = p.commit_transaction(T).unwrap_err();
    assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");

    // Offsets of a member the group moved on from (KIP-447): fenced as a zombie, but
    // the producer itself can abort and go on.
    let mut p = txn_producer(&clients, "fenced-3");
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "x")).unwrap();
    fx.mock().request_errors(
        RDKafkaApiKey::TxnOffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
    );
    let e = p
        .send_offsets_to_transaction(&offsets, &metadata, T)
        .unwrap_err();
    assert!(matches!(e, ClientError::ProducerFenced { .. }), "{e}");
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "after")).unwrap();
    p.send_offsets_to_transaction(&offsets, &metadata, T)
        .unwrap();
    p.commit_transaction(T).unwrap();
}

#[test]
fn a_failed_delivery_fails_the_commit_and_the_producer_goes_on_after_an_abort() {
    let fx = Fixture::new();
    if !fx.is_mock() {
        return; // fault injection needs the mock
    }
    let config = fx.config("txn-abortable");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 2);
    let (_c, metadata) = unjoined_metadata(&clients, "txn-abortable");
    let refuse_next_produce = || {
        fx.mock().request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        )
    };
    let mut p = txn_producer(&clients, "abortable-1");

    // The commit delivers, sees the failure and names it.
    p.begin_transaction().unwrap();
    refuse_next_produce();
    p.send(record(&output, 1, "refused-1")).unwrap();
    let e = p.commit_transaction(T).unwrap_err();
    let ClientError::TransactionAborted { detail, .. } = &e else {
        panic!("{e}");
    };
    assert!(detail.contains("could not be delivered"), "{detail}");
    assert!(detail.contains(&format!("{output}-1")), "{detail}");
    assert!(e.is_task_migrated() && !e.is_fatal());
    p.abort_transaction(T).unwrap();

    // The runtime's poll reports the failure first (to the production handler): the
    // transaction still cannot commit, and takes no more records.
    p.begin_transaction().unwrap();
    refuse_next_produce();
    p.send(record(&output, 1, "refused-2")).unwrap();
    let deadline = Instant::now() + T;
    let polled = loop {
        match p.poll() {
            Ok(()) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => break other,
        }
    };
    assert!(
        matches!(polled, Err(ClientError::Delivery { failed: 1, .. })),
        "{polled:?}"
    );
    let e = p.send(record(&output, 0, "more")).unwrap_err();
    assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
    let e = p.commit_transaction(T).unwrap_err();
    assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
    p.abort_transaction(T).unwrap();

    // Offsets the group coordinator refuses.
    p.begin_transaction().unwrap();
    fx.mock().request_errors(
        RDKafkaApiKey::TxnOffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
    );
    let offsets = [(TopicPartition::new(output.as_str(), 0), 1)];
    let e = p
        .send_offsets_to_transaction(&offsets, &metadata, T)
        .unwrap_err();
    assert!(matches!(e, ClientError::TransactionAborted { .. }), "{e}");
    p.abort_transaction(T).unwrap();

    // The producer is still good; only what it committed was written.
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "good")).unwrap();
    p.send_offsets_to_transaction(&offsets, &metadata, T)
        .unwrap();
    p.commit_transaction(T).unwrap();
    assert_eq!(read_back(&clients, &output, 2, 1), expected(&[(0, "good")]));
}

#[test]
fn a_commit_that_times_out_can_be_repeated() {
    let fx = Fixture::new();
    if !fx.is_mock() {
        return; // fault injection needs the mock
    }
    let config = fx.config("txn-timeout");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 1);
    let mut p = txn_producer(&clients, "timeout-1");
    p.begin_transaction().unwrap();
    p.send(record(&output, 0, "late")).unwrap();
    fx.mock().request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 100],
    );
    let e = p.commit_transaction(Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(e, ClientError::Timeout { .. }) && e.is_retriable(),
        "{e}"
    );
    fx.mock().clear_request_errors(RDKafkaApiKey::EndTxn);
    p.commit_transaction(T).unwrap();
    assert_eq!(read_back(&clients, &output, 1, 1), expected(&[(0, "late")]));
}

#[test]
fn transaction_calls_out_of_place_are_refused_with_a_clear_error() {
    let fx = Fixture::new();
    let config = fx.config("txn-refused");
    let clients = fx.clients(&config);
    let output = fx.topic(&clients, "out", 1);
    let metadata = GroupMetadata::new("g", 1, "m");

    let mut plain = clients.producer("plain").unwrap();
    assert!(!plain.is_transactional());
    let not_transactional = |r: ClientResult<()>| match r {
        Err(ClientError::Broker { detail, .. }) => {
            assert!(detail.contains("not transactional"), "{detail}")
        }
        other => panic!("{other:?}"),
    };
    not_transactional(plain.init_transactions(T));
    not_transactional(plain.begin_transaction());
    not_transactional(plain.send_offsets_to_transaction(&[], &metadata, T));
    not_transactional(plain.commit_transaction(T));
    not_transactional(plain.abort_transaction(T));
    plain.send(record(&output, 0, "plain")).unwrap();
    plain.flush(T).unwrap();

    assert!(matches!(
        clients.transactional_producer("p", ""),
        Err(ClientError::Broker { .. })
    ));
    let mut p = clients.transactional_producer("p", "refused-1").unwrap();
    // Before init_transactions: refused by librdkafka's state machine, nothing broken.
    let e = p.begin_transaction().unwrap_err();
    assert!(matches!(e, ClientError::Broker { .. }), "{e}");
    p.init_transactions(T).unwrap();
    let e = p.send(record(&output, 0, "outside")).unwrap_err();
    let ClientError::Broker { detail, .. } = &e else {
        panic!("{e}");
    };
    assert!(detail.contains("begin_transaction first"), "{detail}");
    p.begin_transaction().unwrap();
    // Metadata not made by a Kafka consumer cannot go to librdkafka.
    let e = p
        .send_offsets_to_transaction(
            &[(TopicPartition::new(output.as_str(), 0), 1)],
            &metadata,
            T,
        )
        .unwrap_err();
    let ClientError::Broker { detail, .. } = &e else {
        panic!("{e}");
    };
    assert!(detail.contains("`g`"), "{detail}");
    p.commit_transaction(T).unwrap();
}
