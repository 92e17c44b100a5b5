use streams_core::EventTime;

#[derive(EventTime)]
struct Click {
    user: String,
    at_ms: i64,
}

fn main() {}
