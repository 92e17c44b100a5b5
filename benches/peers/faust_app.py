"""One timed run of a standard workload (docs/BENCHMARKS.md) through Faust (faust-streaming).

Reads the page views that the framework's bench loaded into `page_views` (4 partitions,
JSON values, keyed by user id) with a fresh consumer group from the earliest offset, and
runs one of:

- w1 stateless: drop referrer "bot", project {page, ts}, JSON out to a topic;
- w2 count: group by page (Faust's repartition topic) -> count in a table (RocksDB store
  through rocksdict, changelog topic) -> every updated count out to a topic;
- w3 windowed: per user (already the key) 1-minute tumbling windows on the records'
  timestamps, kept 70 s (Faust has no grace period: `expires` is the nearest setting) ->
  count in a windowed table (RocksDB, changelog) -> every updated window count out.

Timing matches the framework side of benches/benches/kafka.rs and quix_app.py: from the
worker's start until every record has been processed (W2: every record again from the
repartition topic, which comes after its input record), then the producer is flushed and
the offsets committed. The process then exits at once (Faust's own shutdown is not
timed, as the framework's `close()` is, but it does nothing the flush and commit have not).

Faust's consumer (aiokafka) is created with a fixed `fetch_max_wait_ms=1500`; as tansu
holds every fetch for the full wait, that would make Faust wait 1.5 s per fetch, so this
app sets it to `--fetch-wait-ms` (10, as for the other two) by wrapping the consumer class.

Prints one JSON line on stdout: workload, seconds, records/s, processed.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta

import aiokafka
from peer_args import parse_args

INPUT = "page_views"
PARTITIONS = 4


ARGS = parse_args(__doc__)


class _Consumer(aiokafka.AIOKafkaConsumer):
    """aiokafka's consumer with the run's fetch wait instead of Faust's fixed 1.5 s."""

    def __init__(self, *args, **kwargs):
        kwargs["fetch_max_wait_ms"] = ARGS.fetch_wait_ms
        super().__init__(*args, **kwargs)


aiokafka.AIOKafkaConsumer = _Consumer

import faust  # noqa: E402  (after the consumer is wrapped)

STATE_DIR = tempfile.mkdtemp(prefix="faust-state-")
OUT = f"{ARGS.app_id}-out"

app = faust.App(
    ARGS.app_id,
    broker=f"kafka://{ARGS.bootstrap}",
    store="rocksdb://",
    datadir=STATE_DIR,
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    # The framework's settings: commit every second.
    broker_commit_interval=1.0,
    web_enabled=False,
)
source = app.topic(INPUT, key_serializer="raw", value_serializer="json")
out = app.topic(OUT, partitions=PARTITIONS, key_serializer="raw", value_serializer="json")
progress = {"processed": 0, "t0": 0.0}


async def count_one():
    """Counts a processed record; at the last one, flushes, commits, reports and exits."""
    progress["processed"] += 1
    if progress["processed"] < ARGS.records:
        return
    await app.producer.flush()
    await app.consumer.commit()
    secs = time.monotonic() - progress["t0"]
    result = {
        "workload": ARGS.workload,
        "secs": round(secs, 3),
        "rate": round(ARGS.records / secs, 1),
        # As the framework counts them: input records, and W2's repartitioned ones.
        "processed": ARGS.records * (2 if ARGS.workload == "w2" else 1),
    }
    # Faust redirects sys.stdout to its logger.
    sys.__stdout__.write(json.dumps(result) + "\n")
    sys.__stdout__.flush()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    os._exit(0)


if ARGS.workload == "w1":

    @app.agent(source)
    async def w1(stream):
        async for key, view in stream.items():
            if view["referrer"] != "bot":
                await out.send(key=key, value={"page": view["page"], "ts": view["ts"]})
            await count_one()

elif ARGS.workload == "w2":
    counts = app.Table(f"{ARGS.app_id}-counts", default=int, partitions=PARTITIONS)

    @app.agent(source)
    async def w2(stream):
        by_page = stream.group_by(lambda view: view["page"], name="page")
        async for page, _view in by_page.items():
            counts[page] += 1
            await out.send(key=page, value=counts[page])
            await count_one()

else:
    windows = (
        app.Table(f"{ARGS.app_id}-windows", default=int, partitions=PARTITIONS)
        .tumbling(timedelta(minutes=1), expires=timedelta(seconds=70))
        .relative_to_stream()
    )

    @app.agent(source)
    async def w3(stream):
        async for user, _view in stream.items():
            windows[user] += 1
            await out.send(key=user, value=windows[user].current())
            await count_one()


def main():
    # Faust does not create a topic it only writes to.
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": ARGS.bootstrap})
    topic = NewTopic(OUT, PARTITIONS, 1, config={"retention.ms": "-1"})
    for future in admin.create_topics([topic]).values():
        future.result()
    progress["t0"] = time.monotonic()
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
