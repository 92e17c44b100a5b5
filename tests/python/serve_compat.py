"""Drives `streams serve` with confluent-kafka, the Python client Quix Streams uses.

Usage: python serve_compat.py BOOTSTRAP

Admin (create topics, metadata), an idempotent producer, a group of two consumers that
split the partitions and commit, watermarks and offsets by time, and transactions (one
committed, one aborted) read with both isolation levels. Every check compares what it
reads with what it wrote; the first failure raises (exit status 1). On success it prints
one JSON line for the Rust test (tests/tests/serve_python.rs), which checks the engine's
own view of the records.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = sys.argv[1]
TOPIC = "py-compat"
TXN_TOPIC = "py-compat-txn"
RECORDS = 300
DEADLINE_S = 60


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def create_topics(admin):
    futures = admin.create_topics(
        [NewTopic(TOPIC, num_partitions=3, replication_factor=1),
         NewTopic(TXN_TOPIC, num_partitions=1, replication_factor=1)],
        operation_timeout=10)
    for topic, f in futures.items():
        f.result(timeout=30)
    md = admin.list_topics(timeout=10)
    check(len(md.topics[TOPIC].partitions) == 3, "metadata: 3 partitions")
    check(md.brokers, "metadata: a broker")


def produce(expected):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                  "linger.ms": 5})
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    for i in range(RECORDS):
        key, value = f"k{i % 10}", f"v{i}"
        p.produce(TOPIC, key=key, value=value, timestamp=1_000_000 + i,
                  on_delivery=delivered)
        expected[value] = key
        p.poll(0)
    check(p.flush(30) == 0, "producer: everything delivered")
    check(not errors, f"producer: delivery errors {errors[:3]}")


def group_consume(expected):
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": "py-compat-group",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    consumers = [Consumer(dict(conf, **{"client.id": f"py-{n}"})) for n in range(2)]
    for c in consumers:
        c.subscribe([TOPIC])
    seen = {}
    end = time.time() + DEADLINE_S
    while len(seen) < RECORDS and time.time() < end:
        for c in consumers:
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            value = m.value().decode()
            check(value not in seen, f"group: {value} read twice")
            seen[value] = m.key().decode()
            c.commit(message=m, asynchronous=False)
    check(seen == expected, f"group: read {len(seen)} of {len(expected)} records")
    # The group settles with the partitions split between both members.
    while time.time() < end:
        sizes = sorted(len(c.assignment()) for c in consumers)
        if sizes == [1, 2]:
            break
        for c in consumers:
            m = c.poll(0.1)
            check(m is None or m.error() is not None, "group: a record after the end")
    split = sorted(len(c.assignment()) for c in consumers)
    check(split == [1, 2], f"group: assignment sizes {split}")
    committed = sum(
        max(tp.offset, 0)
        for tp in consumers[0].committed([TopicPartition(TOPIC, p) for p in range(3)],
                                          timeout=10))
    check(committed == RECORDS, f"group: committed offsets add up to {committed}")
    for c in consumers:
        c.close()
    return split


def offsets():
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "py-compat-offsets"})
    total = 0
    for p in range(3):
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
        check(low == 0, f"watermarks: low {low}")
        total += high
    check(total == RECORDS, f"watermarks: high offsets add up to {total}")
    # The first record at or after the timestamp of record 150.
    found = c.offsets_for_times(
        [TopicPartition(TOPIC, p, 1_000_150) for p in range(3)], timeout=10)
    check(all(tp.offset >= 0 for tp in found), f"offsets_for_times: {found}")
    c.close()


def transactions():
    p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "py-compat-txn"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(TXN_TOPIC, key="t", value=f"committed-{i}")
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(TXN_TOPIC, key="t", value=f"aborted-{i}")
    # Sent before the abort (else librdkafka drops them unsent): in the log, aborted.
    check(p.flush(30) == 0, "transactions: aborted records sent")
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(TXN_TOPIC, key="t", value="committed-last")
    p.commit_transaction(30)

    def read(isolation):
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"py-compat-{isolation}",
                      "auto.offset.reset": "earliest", "isolation.level": isolation,
                      "enable.partition.eof": True})
        c.assign([TopicPartition(TXN_TOPIC, 0, 0)])
        values = []
        end = time.time() + DEADLINE_S
        while time.time() < end:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    break
                raise KafkaException(m.error())
            values.append(m.value().decode())
        c.close()
        return values

    committed = read("read_committed")
    want = [f"committed-{i}" for i in range(5)] + ["committed-last"]
    check(committed == want, f"read_committed: {committed}")
    everything = read("read_uncommitted")
    check(len(everything) == 11, f"read_uncommitted: {everything}")
    return len(committed), len(everything)


def main():
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    create_topics(admin)
    expected = {}
    produce(expected)
    split = group_consume(expected)
    offsets()
    committed, uncommitted = transactions()
    print(json.dumps({"produced": RECORDS, "group_split": split,
                      "read_committed": committed, "read_uncommitted": uncommitted}))


if __name__ == "__main__":
    main()
