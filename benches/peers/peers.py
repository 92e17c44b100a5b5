"""Runs W1-W3 with the peer frameworks and with this framework, one after the other, on one
tansu broker and one input, and prints one markdown table of records/s and ratios.

Called by run.sh (which makes the venv, builds the Rust bench and starts tansu); see
README.md beside this file.

Per run and workload, in this order: Quix Streams (quix_app.py), Faust (faust_app.py, when
enabled), then the framework (benches/benches/kafka.rs with KAFKA_INPUT_LOADED=1 and
KAFKA_WORKLOADS=<w>). Each side is a fresh process with a fresh consumer group reading the
same `page_views` from the earliest offset. After each run the output topic is read back
(untimed) to count its records; W1's count must equal the input's non-bot records.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition

PARTITIONS = 4
HERE = os.path.dirname(os.path.abspath(__file__))


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def count_records(bootstrap: str, topic: str, fetch_wait_ms: int) -> int:
    """The records in `topic`, read from offset 0 until 8 s pass without one after the
    first, or 60 s without any: tansu sometimes pauses for seconds between fetches of a
    topic of many small batches (as aiokafka writes them; 4.4 s before the first record
    and 1.9 s in the middle were seen). tansu 0.6's ListOffsets under-reports high
    watermarks, so they are not used."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "peers-count",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": fetch_wait_ms,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        n, last = 0, time.monotonic()
        while time.monotonic() - last < (8.0 if n else 60.0):
            msgs = c.consume(10000, 0.1)
            if msgs:
                n += sum(1 for m in msgs if m.error() is None)
                last = time.monotonic()
        return n
    finally:
        c.close()


def run_checked(cmd, env=None, timeout=None) -> str:
    """Runs `cmd`; its stdout, or exits with its stderr's tail on failure."""
    p = subprocess.run(
        cmd, env=env, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode(errors="replace")[-4000:])
        sys.exit(f"peers: {' '.join(cmd[:3])} ... failed with {p.returncode}")
    return p.stdout.decode(errors="replace")


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        start = line.find("{")
        if start >= 0:
            try:
                return json.loads(line[start:])
            except ValueError:
                continue
    sys.exit(f"peers: no result in the app's output:\n{stdout[-2000:]}")


def bench_env(args, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        KAFKA_BENCH_BOOTSTRAP=args.bootstrap,
        KAFKA_BENCH_TANSU="1",
        KAFKA_RECORDS=str(args.records),
        KAFKA_FETCH_WAIT_MS=str(args.fetch_wait_ms),
    )
    env.update(extra)
    return env


def cell(rates):
    if not rates:
        return "-"
    med = statistics.median(rates)
    return f"{med / 1e3:,.1f} k ({min(rates) / 1e3:,.1f}-{max(rates) / 1e3:,.1f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench-binary", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--broker", default="tansu (memory engine)")
    p.add_argument("--records", type=int, default=500_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workloads", default="w1,w2,w3")
    p.add_argument("--faust", type=int, default=1)
    p.add_argument("--fetch-wait-ms", type=int, default=10)
    p.add_argument("--app-timeout", type=float, default=3600.0)
    args = p.parse_args()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in ("w1", "w2", "w3"):
            sys.exit(f"peers: unknown workload {w} (w1, w2, w3)")
    peers = ["quix"] + (["faust"] if args.faust else [])
    load_start = loadavg()
    cores = os.cpu_count()

    # The input, once, by the framework's bench (the same generator as every W* figure).
    out = run_checked(
        [args.bench_binary], env=bench_env(args, KAFKA_LOAD_ONLY="1"), timeout=600
    )
    w1_expected = int(out.split("w1_expected")[1].split()[0])
    print(
        f"loaded {args.records} page views into page_views; W1 keeps {w1_expected}",
        file=sys.stderr,
    )

    rates = {(side, w): [] for side in peers + ["framework"] for w in workloads}
    outputs = {(side, w): [] for side in peers + ["framework"] for w in workloads}
    problems = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        results_file = os.path.join(tmp, "framework.txt")
        for run in range(args.runs):
            for w in workloads:
                for side in peers + ["framework"]:
                    if side == "framework":
                        prefix = f"fw-r{run}-"
                        open(results_file, "w").close()
                        run_checked(
                            [args.bench_binary],
                            env=bench_env(
                                args,
                                KAFKA_INPUT_LOADED="1",
                                KAFKA_WORKLOADS=w,
                                KAFKA_RUNS="1",
                                KAFKA_APP_PREFIX=prefix,
                                KAFKA_RESULTS=results_file,
                            ),
                            timeout=args.app_timeout,
                        )
                        with open(results_file) as f:
                            fields = f.read().split()
                        rate = float(fields[1])
                        topic = f"{prefix}{w}-0-out"
                    else:
                        app_id = f"{side}-r{run}-{w}"
                        res = last_json(
                            run_checked(
                                [
                                    sys.executable,
                                    "-W",
                                    "ignore",
                                    os.path.join(HERE, f"{side}_app.py"),
                                    "--workload",
                                    w,
                                    "--bootstrap",
                                    args.bootstrap,
                                    "--records",
                                    str(args.records),
                                    "--app-id",
                                    app_id,
                                    "--fetch-wait-ms",
                                    str(args.fetch_wait_ms),
                                ],
                                timeout=args.app_timeout,
                            )
                        )
                        rate = float(res["rate"])
                        topic = f"{app_id}-out"
                    written = count_records(args.bootstrap, topic, args.fetch_wait_ms)
                    rates[(side, w)].append(rate)
                    outputs[(side, w)].append(written)
                    if w == "w1" and written != w1_expected:
                        problems.append(
                            f"run {run}: {side} W1 wrote {written} records, expected {w1_expected}"
                        )
                    print(
                        f"run {run}: {w} {side}: {rate / 1e3:,.1f} k records/s, "
                        f"{written} output records, load {loadavg()}",
                        file=sys.stderr,
                        flush=True,
                    )

    names = {
        "w1": "W1 stateless",
        "w2": "W2 count (repartition)",
        "w3": "W3 windowed count",
    }
    print()
    print(
        f"{args.records:,} page views, 4 partitions, {args.broker} on 127.0.0.1, "
        f"{args.runs} runs, {cores} cores; records/s = input records / wall time, "
        "median (min-max)"
    )
    print()
    head = "| workload | Quix records/s |"
    rule = "|---|---|"
    if args.faust:
        head += " Faust records/s |"
        rule += "---|"
    head += " framework records/s | ratio framework / Quix |"
    rule += "---|---|"
    if args.faust:
        head += " ratio framework / Faust |"
        rule += "---|"
    print(head)
    print(rule)
    for w in workloads:
        fw = statistics.median(rates[("framework", w)])
        quix = statistics.median(rates[("quix", w)])
        row = f"| {names[w]} | {cell(rates[('quix', w)])} |"
        if args.faust:
            row += f" {cell(rates[('faust', w)])} |"
        row += f" {cell(rates[('framework', w)])} | {fw / quix:.2f} |"
        if args.faust:
            row += f" {fw / statistics.median(rates[('faust', w)]):.2f} |"
        print(row)
    print()
    print(
        f"Settings: every side one process, one consumer (Quix: one Application; Faust: one "
        f"worker; framework: one stream thread), fresh consumer group, "
        f"auto.offset.reset=earliest, fetch.wait.max.ms={args.fetch_wait_ms} on every "
        f"consumer, commit every 1 s, at-least-once, state in RocksDB with changelog topics. "
        f"Load average (1/5/15 min): {load_start} at the start, {loadavg()} at the end."
    )
    print()
    out_cells = []
    for w in workloads:
        parts = [
            f"{side} {statistics.median(outputs[(side, w)]):,.0f}"
            for side in peers + ["framework"]
        ]
        out_cells.append(f"{names[w]}: " + ", ".join(parts))
    print(
        f"Output records (median of runs; W1 expected {w1_expected:,}): "
        + "; ".join(out_cells)
    )
    for problem in problems:
        print(f"WARNING: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
