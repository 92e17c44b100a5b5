"""One timed run of a standard workload (docs/BENCHMARKS.md) through Quix Streams.

Reads the page views that the framework's bench loaded into `page_views` (4 partitions,
JSON values, keyed by user id) with a fresh consumer group from the earliest offset, and
runs one of:

- w1 stateless: drop referrer "bot", project {page, ts}, JSON out to a topic;
- w2 count: group by page (repartition topic) -> count (RocksDB state with its changelog
  topic) -> every updated count out to a topic;
- w3 windowed: per user (already the key) 1-minute tumbling windows, grace 10 s -> count
  (RocksDB window state with its changelog) -> every updated window out (`.current()`).

Timing matches the framework side of benches/benches/kafka.rs: from `app.run()` until the
app has processed every record (W2: each input record and each record again from the
repartition topic, as the framework counts it), then stopped, which commits the checkpoint
(producer flushed, offsets and state committed). Records are counted with Quix's
`on_message_processed` callback, which `app.stop()`s at the target.

Prints one JSON line on stdout: workload, seconds, records/s, processed.
"""

import json
import logging
import sys
import tempfile
import time
from datetime import timedelta

from quixstreams import Application
from quixstreams.models import TopicConfig

from peer_args import parse_args

INPUT = "page_views"
PARTITIONS = 4


def count_update(value, state):
    """W2's count: one stored count per key (the page), the new count out."""
    count = state.get("count", 0) + 1
    state.set("count", count)
    return count


def main() -> int:
    args = parse_args(__doc__)

    # Repartitioned records count too (as in the framework's metrics).
    target = args.records * (2 if args.workload == "w2" else 1)
    processed = 0
    app = None

    def on_processed(_topic, _partition, _offset):
        nonlocal processed
        processed += 1
        if processed == target:
            app.stop()

    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=args.app_id,
            auto_offset_reset="earliest",
            # The framework's settings: commit every second, at least once.
            commit_interval=1.0,
            processing_guarantee="at-least-once",
            consumer_extra_config={"fetch.wait.max.ms": args.fetch_wait_ms},
            state_dir=state_dir,
            use_changelog_topics=True,
            on_message_processed=on_processed,
            loglevel="WARNING",
        )
        source = app.topic(INPUT, key_deserializer="str", value_deserializer="json")
        out = app.topic(
            f"{args.app_id}-out",
            key_serializer="str",
            value_serializer="json",
            config=TopicConfig(num_partitions=PARTITIONS, replication_factor=1),
        )
        sdf = app.dataframe(source)
        if args.workload == "w1":
            sdf = sdf.filter(lambda v: v["referrer"] != "bot")
            sdf = sdf.apply(lambda v: {"page": v["page"], "ts": v["ts"]})
        elif args.workload == "w2":
            sdf = sdf.group_by("page", key_deserializer="str", key_serializer="str")
            sdf = sdf.apply(count_update, stateful=True)
        else:
            sdf = (
                sdf.tumbling_window(
                    duration_ms=timedelta(minutes=1), grace_ms=timedelta(seconds=10)
                )
                .count()
                .current()
            )
        sdf.to_topic(out)

        t0 = time.monotonic()
        app.run()
        secs = time.monotonic() - t0
    if processed < target:
        print(
            f"quix {args.workload}: stopped after {processed} of {target} records",
            file=sys.stderr,
        )
        return 1
    result = {
        "workload": args.workload,
        "secs": round(secs, 3),
        "rate": round(args.records / secs, 1),
        "processed": processed,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
