//! Joins: clicks joined to the page views that preceded or followed them, and clicks
//! enriched with a table of users.
//!
//! - Stream-stream join: a click (key: user) joins every page view of the same user at most
//!   10 s before or after it. Both sides are buffered in window stores; each matching pair
//!   is emitted once, with the larger of the two timestamps.
//! - Stream-table join: each click looks up the user's current country in the table
//!   `users`. Only the stream side triggers output; table updates just change the lookup.
//!
//! Both joins need their inputs co-partitioned (same key, same partition count).
//!
//! Run it with `cargo run -p streams-examples --example join`.

use std::time::Duration;

use streams_core::prelude::*;

/// `(topic, user, value, timestamp in ms)` in arrival order: the users table first.
const INPUT: [(&str, &str, &str, i64); 9] = [
    ("users", "alice", "fr", 0),
    ("users", "bob", "de", 0),
    ("views", "alice", "/home", 1_000),
    ("clicks", "alice", "banner", 4_000), // 3 s after /home: joins
    ("views", "bob", "/shop", 5_000),
    ("views", "alice", "/shop", 12_000), // 8 s after the banner click: joins it too
    ("clicks", "bob", "buy", 30_000),    // 25 s after /shop: no view close enough
    ("clicks", "carol", "logo", 31_000), // carol is not in the users table
    ("views", "bob", "/cart", 33_000),   // 3 s after "buy": joins
];
const MAX_GAP_MS: i64 = 10_000;

fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let views = builder.stream::<String, String>("views"); // user -> page
    let clicks = builder.stream::<String, String>("clicks"); // user -> element clicked
    let users = builder.table::<String, String>("users"); // user -> country

    // Stream-stream: views within 10 s before or after a click (grace: 5 s for late records).
    let windows = JoinWindows::of_time_difference_and_grace(
        Duration::from_millis(MAX_GAP_MS as u64),
        Duration::from_secs(5),
    );
    clicks
        .join(
            &views,
            |element, page| format!("{element} ~ {page}"),
            windows,
        )
        .to("clicks-with-views");

    // Stream-table: a left join keeps clicks of unknown users (their country is `None`).
    clicks
        .left_join_table(&users, |element, country| {
            format!("{element} from {}", country.map_or("?", String::as_str))
        })
        .to("clicks-with-country");
    builder.build()
}

/// `(user, joined value, timestamp)` of every record of both output topics.
type Joined = Vec<(String, String, i64)>;

fn run() -> Result<(Joined, Joined), StreamsError> {
    let driver = TopologyTestDriver::new(topology()?, StreamsConfig::new("join-example"))?;
    for (topic, user, value, ts) in INPUT {
        let input = driver.input_topic::<String, String>(topic);
        input.pipe_input_at(user.to_string(), value.to_string(), ts)?;
    }
    let read = |topic: &str| -> Result<Joined, StreamsError> {
        let out = driver.output_topic::<String, String>(topic);
        let records = out.read_records_to_list()?;
        Ok(records
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect())
    };
    Ok((read("clicks-with-views")?, read("clicks-with-country")?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (with_views, with_country) = run()?;
    println!(
        "Clicks joined with views at most {} s apart:",
        MAX_GAP_MS / 1000
    );
    for (user, value, ts) in with_views {
        println!("  {user:<6} {value:<16} at {ts} ms");
    }
    println!("Clicks joined with the users table:");
    for (user, value, ts) in with_country {
        println!("  {user:<6} {value:<16} at {ts} ms");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn joins_match_a_nested_loop_and_a_map_lookup() {
        let of = |topic: &'static str| super::INPUT.into_iter().filter(move |r| r.0 == topic);
        // Stream-stream: every (click, view) pair of one user at most MAX_GAP_MS apart.
        let mut expected_views = Vec::new();
        for (_, user, element, click_ts) in of("clicks") {
            for (_, view_user, page, view_ts) in of("views") {
                if user == view_user && (click_ts - view_ts).abs() <= super::MAX_GAP_MS {
                    let value = format!("{element} ~ {page}");
                    expected_views.push((user.to_string(), value, click_ts.max(view_ts)));
                }
            }
        }
        // Stream-table: the table is complete before the first click.
        let users: HashMap<&str, &str> = of("users").map(|(_, u, c, _)| (u, c)).collect();
        let expected_country: Vec<_> = of("clicks")
            .map(|(_, user, element, ts)| {
                let country = users.get(user).copied().unwrap_or("?");
                (user.to_string(), format!("{element} from {country}"), ts)
            })
            .collect();

        let (mut with_views, with_country) = super::run().unwrap();
        with_views.sort();
        expected_views.sort();
        assert_eq!(expected_views.len(), 3);
        assert_eq!(with_views, expected_views);
        assert_eq!(with_country, expected_country);
    }
}
