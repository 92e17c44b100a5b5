use streams_core::EventTime;

#[derive(EventTime)]
struct Click {
    #[event_time]
    created_ms: i64,
    #[event_time]
    updated_ms: i64,
}

fn main() {}
