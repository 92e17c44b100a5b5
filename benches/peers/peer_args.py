"""The command line the peer apps (quix_app.py, faust_app.py) share: which workload, the
broker, how many input records, the consumer group, and the fetch wait."""

import argparse


def parse_args(doc: str) -> argparse.Namespace:
    """The peer app's arguments, its usage described by the first line of `doc`."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--workload", choices=["w1", "w2", "w3"], required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--app-id", required=True, help="consumer group; output topic <id>-out")
    p.add_argument("--fetch-wait-ms", type=int, default=10)
    return p.parse_args()
