use serde::{Deserialize, Serialize};
use streams_core::StreamsSerde;

#[derive(Serialize, Deserialize, StreamsSerde)]
#[streams(format = "json")]
#[streams(format = "bincode")]
struct PageView {
    user: String,
}

fn main() {}
