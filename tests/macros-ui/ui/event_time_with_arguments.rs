use streams_core::EventTime;

#[derive(EventTime)]
struct Click {
    #[event_time(millis)]
    at: i64,
}

fn main() {}
