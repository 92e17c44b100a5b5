use serde::{Deserialize, Serialize};
use streams_core::StreamsSerde;

#[derive(Serialize, Deserialize, StreamsSerde)]
#[streams(format = "xml")]
struct PageView {
    user: String,
}

fn main() {}
