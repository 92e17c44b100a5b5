use streams_core::EventTime;

#[derive(EventTime)]
enum Event {
    Click {
        #[event_time]
        at_ms: i64,
    },
}

fn main() {}
