use streams_core::StreamsSerde;

#[derive(serde::Deserialize, StreamsSerde)]
struct PageView {
    user: String,
}

fn main() {}
