//! The Kafka client suite ([`kafka_suite`]) against `streams serve`: the embedded log engine
//! served over the Kafka wire protocol by `streams_state::serve`, started in this test
//! process on a free loopback port, in a temporary directory, for all the tests of the
//! crate (each uses its own topics and group). App processes the suite starts connect to it
//! like to any broker.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_suite;

use std::sync::{Arc, OnceLock};

use streams_state::LogEngine;
use streams_state::serve::{Server, ServerHandle};

/// One server for the crate's tests: it lives until the process exits.
fn broker() -> Option<kafka_suite::Broker> {
    static SERVER: OnceLock<(tempfile::TempDir, ServerHandle)> = OnceLock::new();
    let (_, server) = SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(LogEngine::open(dir.path()).unwrap());
        let server = Server::start(engine, "127.0.0.1:0").unwrap();
        (dir, server)
    });
    Some(kafka_suite::Broker::At(server.bootstrap_servers()))
}
