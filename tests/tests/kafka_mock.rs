//! The Kafka client suite ([`kafka_suite`]) against librdkafka's in-process mock cluster: no
//! install, a fresh cluster per test, and failure injection (the broker outage test).

mod kafka_suite;

/// Every test gets its own mock cluster.
fn broker() -> Option<kafka_suite::Broker> {
    Some(kafka_suite::Broker::Mock)
}
