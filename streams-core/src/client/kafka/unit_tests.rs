//! Unit tests of the Kafka clients that need no broker.

use super::consumer::*;
use super::settings::*;
use super::*;
use crate::config::StreamsConfig;

fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend((topics.len() as i32).to_be_bytes());
    for (t, ps) in topics {
        b.extend((t.len() as i16).to_be_bytes());
        b.extend(t.as_bytes());
        b.extend((ps.len() as i32).to_be_bytes());
        for p in *ps {
            b.extend(p.to_be_bytes());
        }
    }
    match user_data {
        Some(d) => {
            b.extend((d.len() as i32).to_be_bytes());
            b.extend(d);
        }
        None => b.extend((-1i32).to_be_bytes()),
    }
    b
}

#[test]
fn static_member_ids_are_per_stream_thread() {
    assert_eq!(
        static_member_id("web-1", "app-1a2b-srv-h_80-StreamThread-2-consumer"),
        "web-1-2"
    );
    assert_eq!(static_member_id("web-1", "tool"), "web-1-tool");
}

#[test]
fn assignments_decode_from_the_consumer_protocol() {
    let bytes = encode(3, &[("words", &[0, 2]), ("counts", &[1])], Some(b"xyz"));
    assert_eq!(
        decode_assignment(&bytes).unwrap(),
        vec![
            TopicPartition::new("words", 0),
            TopicPartition::new("words", 2),
            TopicPartition::new("counts", 1),
        ]
    );
    let empty = encode(0, &[], None);
    assert!(decode_assignment(&empty).unwrap().is_empty());
    // Truncated: an error, not a panic.
    for cut in 1..bytes.len() - 7 {
        assert!(decode_assignment(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(decode_assignment(&encode(0, &[("t", &[-1])], None)).is_err());
}

#[test]
fn settings_keep_what_the_runtime_needs() {
    let config = StreamsConfig::new("app")
        .with_bootstrap_servers(["127.0.0.1:9092"])
        .with_client_property(ClientPrefix::Consumer, "enable.auto.commit", "true")
        .with_client_property(ClientPrefix::Consumer, "fetch.min.bytes", "10")
        .with_client_property(ClientPrefix::MainConsumer, "fetch.min.bytes", "20")
        .with_client_property(ClientPrefix::Consumer, "max.poll.records", "7")
        .with_client_property(ClientPrefix::Producer, "linger.ms", "50");
    let s = Settings::from_config(&config).unwrap();
    let main = s.consumer_config(ClientPrefix::MainConsumer, "app", "c");
    assert_eq!(main.get("enable.auto.commit"), Some("false"));
    assert_eq!(main.get("group.id"), Some("app"));
    assert_eq!(main.get("partition.assignment.strategy"), Some("range"));
    assert_eq!(main.get("fetch.min.bytes"), Some("20"));
    assert_eq!(main.get("max.poll.records"), None);
    let restore = s.consumer_config(ClientPrefix::RestoreConsumer, "app-restore", "r");
    assert_eq!(restore.get("fetch.min.bytes"), Some("10"));
    assert_eq!(s.max_poll_records(ClientPrefix::MainConsumer).unwrap(), 7);
    let producer = s.producer_config("p");
    assert_eq!(producer.get("enable.idempotence"), Some("true"));
    assert_eq!(producer.get("linger.ms"), Some("50"));
    assert!(Settings::from_config(&StreamsConfig::new("app")).is_err());
}

/// TLS and SASL settings reach librdkafka, which this build supports (OpenSSL): the
/// clients are made (librdkafka refuses `SASL_SSL` at creation when built without
/// it), and the password never shows in the config's Debug output.
#[test]
fn tls_and_sasl_settings_pass_through_and_the_build_supports_them() {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;
    let secret = "s3cr3t-pw";
    let mut config = StreamsConfig::new("app").with_bootstrap_servers(["127.0.0.1:9093"]);
    for prefix in [ClientPrefix::Consumer, ClientPrefix::Producer] {
        for (k, v) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "app"),
            ("sasl.password", secret),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            config = config.with_client_property(prefix, k, v);
        }
    }
    assert!(!format!("{config:?}").contains(secret));
    let s = Settings::from_config(&config).unwrap();
    let consumer = s.consumer_config(ClientPrefix::MainConsumer, "app", "c");
    assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
    assert_eq!(consumer.get("sasl.password"), Some(secret));
    consumer.create::<BaseConsumer>().unwrap();
    let producer = s.producer_config("p");
    assert_eq!(producer.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
    producer.create::<BaseProducer>().unwrap();
    // Mutual TLS settings are accepted too.
    let mut tls = s.producer_config("p");
    tls.set("security.protocol", "SSL");
    tls.set("ssl.certificate.location", "/nonexistent/cert.pem");
    let refused = tls.create::<BaseProducer>().err().map(|e| e.to_string());
    // librdkafka reads the file at creation: the error names it, not a missing feature.
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("cert.pem") || e.contains("certificate")),
        "{refused:?}"
    );
}
