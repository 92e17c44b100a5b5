//! Driver tests of bad input: records that do not deserialize (each deserialization
//! handler), null keys and values (skipped and counted), invalid timestamps (each policy),
//! and event time taken from values; processors that fail on a record (each processing
//! handler).

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use serde::{Deserialize, Serialize};
use streams_core::config::dlq_headers;
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::serde::SerdeError;
use streams_core::time::FnExtractor;
use streams_tests::driver;

const APP: &str = "bad";

fn s(x: &str) -> String {
    x.to_string()
}

/// in (String, String) -> upper-cased values -> out.
fn pass_through(
    config: StreamsConfig,
    partitions: u32,
) -> Result<TopologyTestDriver, StreamsError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .map_values(|v| v.to_uppercase())
        .to("out");
    TopologyTestDriver::builder(builder.build()?, config)
        .partitions("in", partitions)
        .build()
}

fn out_values(driver: &TopologyTestDriver) -> Result<Vec<String>, StreamsError> {
    driver
        .output_topic::<String, String>("out")
        .read_values_to_list()
}

/// Every (value, timestamp) written to `topic`.
fn values_at(driver: &TopologyTestDriver, topic: &str) -> Vec<(String, i64)> {
    let out = driver.output_topic::<String, String>(topic);
    let records = out.read_records_to_list().unwrap();
    records
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect()
}

/// Where a record failed to deserialize: key or value, topic, partition and offset, and
/// the serde's error. Panics (failing the test) on any other error.
fn deserialization(err: &StreamsError) -> ((&str, &str, u32, i64), &SerdeError) {
    match err {
        StreamsError::Deserialization {
            which,
            topic,
            partition,
            offset,
            source,
        } => ((which, topic, *partition, *offset), source),
        other => panic!("expected a deserialization error, got {other:?}"),
    }
}

const INVALID_UTF8: [u8; 2] = [0xff, 0xfe];

#[test]
fn fail_handler_stops_with_the_topic_partition_and_offset_of_an_invalid_value() {
    let driver = pass_through(StreamsConfig::new(APP), 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input(s("k"), s("a")).unwrap();
    input.pipe_input(s("k"), s("b")).unwrap();
    let err = input
        .pipe_raw(Some(b"k".to_vec()), Some(INVALID_UTF8.to_vec()), 10)
        .unwrap_err();
    let (place, source) = deserialization(&err);
    assert_eq!(place, ("value", "in", 0, 2));
    assert!(
        matches!(
            source,
            SerdeError::Invalid {
                format: "utf-8",
                ..
            }
        ),
        "{source:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("in-0@2"), "{msg}");
    assert!(msg.contains("value"), "{msg}");
    assert_eq!(out_values(&driver).unwrap(), vec![s("A"), s("B")]);
    assert_eq!(driver.metrics().skipped_records, 0);
}

#[test]
fn fail_handler_reports_an_invalid_key_in_its_partition() {
    let driver = pass_through(StreamsConfig::new(APP), 4).unwrap();
    let input = driver.input_topic::<String, String>("in");
    let key = INVALID_UTF8.to_vec();
    let p = partition_for_key(&key, 4);
    // Two good records in the same partition first (keys chosen to land there).
    let same_partition: Vec<String> = (0..200)
        .map(|i| format!("k{i}"))
        .filter(|k| partition_for_key(k.as_bytes(), 4) == p)
        .take(2)
        .collect();
    assert_eq!(same_partition.len(), 2);
    for k in &same_partition {
        input.pipe_input(k.clone(), s("ok")).unwrap();
    }
    let err = input
        .pipe_raw(Some(key), Some(b"v".to_vec()), 1)
        .unwrap_err();
    assert_eq!(deserialization(&err).0, ("key", "in", p, 2));
    assert!(err.to_string().contains(&format!("in-{p}@2")), "{err}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde)]
struct Order {
    id: u64,
    amount: i64,
}

#[test]
fn fail_handler_reports_malformed_json() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Order>("orders")
        .map_values(|o| o.amount)
        .to("amounts");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, Order>("orders");
    input
        .pipe_input(s("o1"), Order { id: 1, amount: 5 })
        .unwrap();
    // The same format other clients write: plain JSON.
    input
        .pipe_raw(
            Some(b"o2".to_vec()),
            Some(br#"{"id":2,"amount":7}"#.to_vec()),
            0,
        )
        .unwrap();
    let err = input
        .pipe_raw(Some(b"o3".to_vec()), Some(br#"{"id": 3,"#.to_vec()), 0)
        .unwrap_err();
    let (place, source) = deserialization(&err);
    assert_eq!(place, ("value", "orders", 0, 2));
    assert!(
        matches!(source, SerdeError::Invalid { format: "json", .. }),
        "{source:?}"
    );
    assert!(err.to_string().contains("orders-0@2"), "{err}");
    assert_eq!(
        driver
            .output_topic::<String, i64>("amounts")
            .read_values_to_list()
            .unwrap(),
        vec![5, 7]
    );
}

#[test]
fn log_and_continue_skips_the_record_counts_it_and_goes_on() {
    let config = StreamsConfig::new(APP)
        .with_deserialization_handler(DeserializationHandler::LogAndContinue);
    let driver = pass_through(config, 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input(s("k"), s("a")).unwrap();
    input
        .pipe_raw(Some(b"k".to_vec()), Some(INVALID_UTF8.to_vec()), 0)
        .unwrap();
    input.pipe_input(s("k"), s("b")).unwrap();
    input.pipe_input(s("k"), s("c")).unwrap();
    assert_eq!(out_values(&driver).unwrap(), vec![s("A"), s("B"), s("C")]);
    let m = driver.metrics();
    assert_eq!(m.skipped_records, 1);
    assert_eq!(m.dead_lettered, 0);
    assert_eq!(m.processed, 3);
}

#[test]
fn dead_letter_sends_the_original_bytes_with_error_headers_and_goes_on() {
    let config = StreamsConfig::new(APP)
        .with_deserialization_handler(DeserializationHandler::DeadLetter { topic: s("dlq") });
    let driver = pass_through(config, 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    // A producer that writes raw bytes, with its own headers.
    let raw = driver.input_topic_with::<String, Vec<u8>>("in", default_serde(), default_serde());
    input.pipe_input(s("k"), s("a")).unwrap();
    let mut headers = Headers::new();
    headers.add("trace-id", Some(b"t-42".to_vec()));
    raw.pipe_record(Record::new(s("bad-key"), INVALID_UTF8.to_vec(), 1_234).with_headers(headers))
        .unwrap();
    input.pipe_input(s("k"), s("b")).unwrap();
    assert_eq!(out_values(&driver).unwrap(), vec![s("A"), s("B")]);

    let dlq = driver.output_topic::<Option<Vec<u8>>, Option<Vec<u8>>>("dlq");
    let r = dlq.read_record().unwrap().unwrap();
    assert!(dlq.is_empty());
    assert_eq!(r.key, Some(b"bad-key".to_vec()));
    assert_eq!(r.value, Some(INVALID_UTF8.to_vec()));
    assert_eq!(r.timestamp, 1_234);
    let header = |name: &str| -> String {
        let h = r
            .headers
            .last(name)
            .unwrap_or_else(|| panic!("no header {name}"));
        String::from_utf8(h.value.clone().unwrap()).unwrap()
    };
    assert_eq!(header("trace-id"), "t-42");
    assert_eq!(header(dlq_headers::TOPIC), "in");
    assert_eq!(header(dlq_headers::PARTITION), "0");
    assert_eq!(header(dlq_headers::OFFSET), "1");
    assert!(!header(dlq_headers::EXCEPTION).is_empty());
    assert!(header(dlq_headers::MESSAGE).contains("utf-8"));
    // The original header comes first, the error headers after it.
    assert_eq!(r.headers.iter().next().unwrap().key, "trace-id");
    for name in [
        dlq_headers::EXCEPTION,
        dlq_headers::MESSAGE,
        dlq_headers::TOPIC,
        dlq_headers::PARTITION,
        dlq_headers::OFFSET,
    ] {
        assert!(name.starts_with("__streams.errors."));
    }

    let m = driver.metrics();
    assert_eq!(m.dead_lettered, 1);
    assert_eq!(m.skipped_records, 1);
    assert_eq!(m.processed, 2);
}

/// A null key or value is a valid Kafka record (a keyless event, a tombstone), not a
/// deserialization error: whatever the handler, a `String` key or value cannot hold it, so
/// the record is skipped and counted as dropped (Kafka Streams' aggregations skip null keys
/// the same way), and the app goes on; nothing is dead-lettered.
#[test]
fn a_null_key_or_value_for_a_type_without_null_is_skipped_and_counted() {
    for handler in [
        DeserializationHandler::Fail,
        DeserializationHandler::LogAndContinue,
        DeserializationHandler::DeadLetter { topic: s("dlq") },
    ] {
        let config = StreamsConfig::new(APP).with_deserialization_handler(handler.clone());
        let driver = pass_through(config, 1).unwrap();
        let input = driver.input_topic::<String, String>("in");
        input.pipe_raw(None, Some(b"v".to_vec()), 0).unwrap();
        input.pipe_raw(Some(b"k".to_vec()), None, 1).unwrap();
        input.pipe_input(s("k"), s("w")).unwrap();
        assert_eq!(out_values(&driver).unwrap(), vec![s("W")], "{handler:?}");
        let m = driver.metrics();
        assert_eq!(
            (
                m.dropped_records,
                m.null_records,
                m.skipped_records,
                m.dead_lettered
            ),
            (2, 2, 0, 0),
            "{handler:?}"
        );
    }
}

#[test]
fn a_null_value_for_an_optional_value_type_is_a_record_not_an_error() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Option<String>>("in")
        .map_values(|v| v.map_or(s("<null>"), |v| v.to_uppercase()))
        .to("out");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, Option<String>>("in");
    input.pipe_raw(Some(b"k".to_vec()), None, 0).unwrap();
    input.pipe_input(s("k"), Some(s("x"))).unwrap();
    assert_eq!(out_values(&driver).unwrap(), vec![s("<null>"), s("X")]);
    assert_eq!(driver.metrics().skipped_records, 0);
}

#[test]
fn invalid_timestamps_fail_by_default() {
    let driver = pass_through(StreamsConfig::new(APP), 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("k"), s("a"), 0).unwrap();
    let err = input.pipe_input_at(s("k"), s("b"), -5).unwrap_err();
    match &err {
        StreamsError::InvalidTimestamp {
            timestamp,
            topic,
            partition,
            offset,
        } => {
            assert_eq!(
                (*timestamp, topic.as_str(), *partition, *offset),
                (-5, "in", 0, 1)
            );
        }
        other => panic!("expected InvalidTimestamp, got {other:?}"),
    }
    assert!(err.to_string().contains("in-0@1"), "{err}");
    assert_eq!(out_values(&driver).unwrap(), vec![s("A")]);
}

#[test]
fn skip_and_count_drops_records_with_invalid_timestamps() {
    let config =
        StreamsConfig::new(APP).with_invalid_timestamp_policy(InvalidTimestampPolicy::SkipAndCount);
    let driver = pass_through(config, 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("k"), s("a"), 10).unwrap();
    input.pipe_input_at(s("k"), s("b"), -5).unwrap();
    input.pipe_input_at(s("k"), s("c"), -1).unwrap();
    input.pipe_input_at(s("k"), s("d"), 20).unwrap();
    assert_eq!(values_at(&driver, "out"), vec![(s("A"), 10), (s("D"), 20)]);
    let m = driver.metrics();
    assert_eq!(m.skipped_records, 2);
    assert_eq!(m.processed, 2);
}

#[test]
fn use_partition_time_replaces_an_invalid_timestamp_with_the_partition_s_time() {
    let config = StreamsConfig::new(APP)
        .with_invalid_timestamp_policy(InvalidTimestampPolicy::UsePartitionTime);
    let driver = pass_through(config, 1).unwrap();
    let input = driver.input_topic::<String, String>("in");
    // No valid timestamp yet on the partition: skipped and counted.
    input.pipe_input_at(s("k"), s("early"), -5).unwrap();
    input.pipe_input_at(s("k"), s("a"), 1_000).unwrap();
    input.pipe_input_at(s("k"), s("b"), 700).unwrap(); // partition time stays 1000
    input.pipe_input_at(s("k"), s("c"), -5).unwrap();
    assert_eq!(
        values_at(&driver, "out"),
        vec![(s("A"), 1_000), (s("B"), 700), (s("C"), 1_000)]
    );
    assert_eq!(driver.metrics().skipped_records, 1);
}

#[test]
fn a_source_s_own_policy_overrides_the_application_s() {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(
            &["lenient"],
            Consumed::with(default_serde(), default_serde())
                .with_invalid_timestamp_policy(InvalidTimestampPolicy::SkipAndCount),
        )
        .to("out");
    builder.stream::<String, String>("strict").to("out");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new(APP)).unwrap();
    driver
        .input_topic::<String, String>("lenient")
        .pipe_input_at(s("k"), s("x"), -1)
        .unwrap();
    assert_eq!(driver.metrics().skipped_records, 1);
    let err = driver
        .input_topic::<String, String>("strict")
        .pipe_input_at(s("k"), s("y"), -1)
        .unwrap_err();
    assert!(
        matches!(err, StreamsError::InvalidTimestamp { timestamp: -1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_custom_extractor_sets_event_time_and_its_invalid_results_follow_the_policy() {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, String>(
            &["in"],
            Consumed::with(default_serde(), default_serde()).with_timestamp_extractor(FnExtractor(
                |r: &Record<String, String>| r.value.parse::<i64>().unwrap_or(-1),
            )),
        )
        .to("out");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input_at(s("k"), s("1234"), 99).unwrap();
    input.pipe_input_at(s("k"), s("5"), 99).unwrap();
    assert_eq!(
        values_at(&driver, "out"),
        vec![(s("1234"), 1_234), (s("5"), 5)]
    );
    let err = input.pipe_input_at(s("k"), s("oops"), 99).unwrap_err();
    assert!(
        matches!(
            err,
            StreamsError::InvalidTimestamp {
                timestamp: -1,
                offset: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StreamsSerde, EventTime)]
struct Click {
    user: String,
    page: String,
    #[event_time]
    at_ms: i64,
}

#[test]
fn event_time_extractor_takes_record_timestamps_from_the_value() {
    use streams_core::time::EventTimeExtractor;
    let click = |user: &str, page: &str, at_ms: i64| Click {
        user: s(user),
        page: s(page),
        at_ms,
    };
    let builder = StreamsBuilder::new();
    let clicks = builder.stream_with::<String, Click>(
        &["clicks"],
        Consumed::with(default_serde(), default_serde())
            .with_timestamp_extractor(EventTimeExtractor),
    );
    clicks.map_values(|c| c.page).to("pages");
    clicks
        .group_by(|_, c| c.user.clone())
        .count()
        .to_stream()
        .to("counts");
    let driver =
        TopologyTestDriver::new(builder.build().unwrap(), StreamsConfig::new(APP)).unwrap();
    let input = driver.input_topic::<String, Click>("clicks");
    // The record timestamps (1, 2, 3) are ignored: the value's at_ms is the event time.
    input
        .pipe_input_at(s("k1"), click("ann", "/a", 5_000), 1)
        .unwrap();
    input
        .pipe_input_at(s("k2"), click("ann", "/b", 3_000), 2)
        .unwrap();
    input
        .pipe_input_at(s("k3"), click("bob", "/c", 8_000), 3)
        .unwrap();
    assert_eq!(
        values_at(&driver, "pages"),
        vec![(s("/a"), 5_000), (s("/b"), 3_000), (s("/c"), 8_000)]
    );
    let counts = driver::records(&driver.output_topic::<String, Option<i64>>("counts"));
    assert_eq!(
        counts,
        vec![
            (s("ann"), Some(1), 5_000),
            (s("ann"), Some(2), 5_000),
            (s("bob"), Some(1), 8_000),
        ]
    );
    // A negative event time is invalid: the default policy fails.
    let err = input
        .pipe_input_at(s("k4"), click("ann", "/d", -10), 4)
        .unwrap_err();
    assert!(
        matches!(err, StreamsError::InvalidTimestamp { timestamp: -10, .. }),
        "{err:?}"
    );
}

/// Fails on every record whose value is "poison" and passes the others on; with `tick`,
/// also fails in a wall-clock punctuation every second.
struct Checker {
    tick: bool,
}

impl Processor<String, String, String, String> for Checker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        if self.tick {
            ctx.schedule(
                std::time::Duration::from_secs(1),
                PunctuationType::WallClockTime,
            )?;
        }
        Ok(())
    }
    fn punctuate(
        &mut self,
        _p: Punctuation,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        Err(StreamsError::processor(ctx.name(), "the tick failed"))
    }
    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), StreamsError> {
        if r.value == "poison" {
            return Err(StreamsError::processor(ctx.name(), "cannot check poison"));
        }
        ctx.forward(r)
    }
}

/// in -> checker -> out, and in -> counted per key (`counts`), and in -> `all` untouched.
fn checked(config: StreamsConfig, partitions: u32) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let input = builder.stream::<String, String>("in");
    input.to("all");
    let checked = input.process(|| Checker { tick: false }, Named::as_("checker"), &[]);
    checked.to("out");
    checked.group_by_key().count().to_stream().to("counts");
    driver::with_partitions(builder.build().unwrap(), config, &[("in", partitions)])
}

/// Latest count per key in `counts`.
fn latest_counts(driver: &TopologyTestDriver) -> std::collections::BTreeMap<String, i64> {
    driver
        .output_topic::<String, i64>("counts")
        .read_key_values_to_map()
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn a_failing_processor_fails_by_default_with_its_error() {
    let driver = checked(StreamsConfig::new(APP), 1);
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input(s("k"), s("a")).unwrap();
    let err = input.pipe_input(s("k"), s("poison")).unwrap_err();
    assert!(
        matches!(&err, StreamsError::Processor { node, .. } if node == "checker"),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot check poison"), "{err}");
    assert_eq!(driver.metrics().dropped_records, 0);
}

/// `processing.exception.handler=log_and_continue`: the failing processor's record goes no
/// further from it (not to `out`, not counted), the other branch still gets it, the
/// drop is counted, and processing goes on, over several partitions.
#[test]
fn log_and_continue_drops_the_record_at_the_failing_processor_and_goes_on() {
    use streams_core::config::ProcessingHandler;
    let config = StreamsConfig::new(APP).with_processing_handler(ProcessingHandler::LogAndContinue);
    let driver = checked(config, 3);
    let input = driver.input_topic::<String, String>("in");
    let sent = [
        ("a", "1"),
        ("b", "poison"),
        ("a", "2"),
        ("c", "poison"),
        ("b", "3"),
        ("a", "poison"),
    ];
    for (k, v) in sent {
        input.pipe_input(s(k), s(v)).unwrap();
    }
    // The reference: every record reaches `all`; the others, and the counts, skip poison.
    let mut want_out: Vec<String> = Vec::new();
    let mut want_counts = std::collections::BTreeMap::new();
    for (k, v) in sent {
        if v != "poison" {
            want_out.push(v.to_string());
            *want_counts.entry(k.to_string()).or_insert(0i64) += 1;
        }
    }
    let mut all: Vec<String> = driver
        .output_topic::<String, String>("all")
        .read_values_to_list()
        .unwrap();
    all.sort();
    let mut want_all: Vec<String> = sent.iter().map(|(_, v)| v.to_string()).collect();
    want_all.sort();
    assert_eq!(all, want_all);
    let mut out = out_values(&driver).unwrap();
    out.sort();
    want_out.sort();
    assert_eq!(out, want_out);
    assert_eq!(latest_counts(&driver), want_counts);
    assert_eq!(driver.metrics().dropped_records, 3);
}

/// KIP-1033 covers punctuations too: a failing punctuator fails by default, and under
/// `log_and_continue` each failed firing is counted and records still flow.
#[test]
fn a_failing_punctuator_follows_the_processing_handler() {
    use std::time::Duration;
    use streams_core::config::ProcessingHandler;
    let build = |config: StreamsConfig| {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .process(|| Checker { tick: true }, Named::as_("ticker"), &[])
            .to("out");
        TopologyTestDriver::builder(builder.build().unwrap(), config)
            .build()
            .unwrap()
    };
    let mut driver = build(StreamsConfig::new(APP));
    driver
        .input_topic::<String, String>("in")
        .pipe_input(s("k"), s("a"))
        .unwrap();
    let err = driver
        .advance_wall_clock_time(Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains("the tick failed"), "{err}");

    let mut driver =
        build(StreamsConfig::new(APP).with_processing_handler(ProcessingHandler::LogAndContinue));
    let input = driver.input_topic::<String, String>("in");
    input.pipe_input(s("k"), s("a")).unwrap();
    driver
        .advance_wall_clock_time(Duration::from_secs(1))
        .unwrap();
    driver
        .advance_wall_clock_time(Duration::from_secs(1))
        .unwrap();
    input.pipe_input(s("k"), s("b")).unwrap();
    assert_eq!(out_values(&driver).unwrap(), vec![s("a"), s("b")]);
    assert_eq!(driver.metrics().dropped_records, 2);
}
