//! A changelog sink that records what it is sent, for the store conformance tests.

use std::sync::{Arc, Mutex};

use streams_state::{ChangelogSink, StateError};

/// What a [`RecordingSink`] was sent, in order: key and value (`None`: a tombstone).
pub(crate) type Logged = Arc<Mutex<Vec<(Vec<u8>, Option<Vec<u8>>)>>>;

/// A changelog sink that appends every record it is sent to a shared list.
pub(crate) struct RecordingSink(pub(crate) Logged);

impl ChangelogSink for RecordingSink {
    fn send(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        self.0
            .lock()
            .unwrap()
            .push((key.to_vec(), value.map(<[u8]>::to_vec)));
        Ok(())
    }
}
