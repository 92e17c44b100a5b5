use serde::{Deserialize, Serialize};
use streams_core::StreamsSerde;

#[derive(Serialize, Deserialize, StreamsSerde)]
#[streams(fromat = "json")]
struct PageView {
    user: String,
}

fn main() {}
