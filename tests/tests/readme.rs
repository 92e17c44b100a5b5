//! The README's twenty-line example, kept compiling and passing.

use streams_core::prelude::*;

#[derive(Clone, serde::Serialize, serde::Deserialize, StreamsSerde, EventTime)]
#[streams(format = "json")]
struct PageView {
    user_id: String,
    page: String,
    #[event_time]
    ts: i64,
}

#[test]
fn readme_example_counts_views_per_page() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, PageView>(
            &["page_views"],
            Consumed::with(default_serde(), default_serde())
                .with_timestamp_extractor(EventTimeExtractor),
        )
        .group_by(|_user, view| view.page.clone())
        .count_with(Materialized::as_("views-per-page"))
        .to_stream()
        .to("views-per-page");

    let driver = TopologyTestDriver::builder(builder.build()?, StreamsConfig::new("activity"))
        .partitions("page_views", 4)
        .build()?;
    let views = driver.input_topic::<String, PageView>("page_views");
    views.pipe_input(
        "u1".into(),
        PageView {
            user_id: "u1".into(),
            page: "/home".into(),
            ts: 1_000,
        },
    )?;
    views.pipe_input(
        "u2".into(),
        PageView {
            user_id: "u2".into(),
            page: "/home".into(),
            ts: 2_000,
        },
    )?;
    let store = driver.key_value_store::<String, i64>("views-per-page")?;
    assert_eq!(store.get(&"/home".into())?, Some(2));
    let out = driver.output_topic::<String, Option<i64>>("views-per-page");
    let last = out.read_records_to_list()?.pop().expect("two updates");
    // Aggregation output carries the largest contributing event time.
    assert_eq!((last.value, last.timestamp), (Some(2), 2_000));
    Ok(())
}
