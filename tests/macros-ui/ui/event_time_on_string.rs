use streams_core::EventTime;

#[derive(EventTime)]
struct Click {
    user: String,
    #[event_time]
    at: String,
}

fn main() {}
