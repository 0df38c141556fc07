"""Load benchmark: a burst of 200 alarm events (duplicates and flapping) over 50 nodes through the trigger
in parallel, and 10,000 S3 object events (each object 20 times) through the indexer in parallel; events
per second beside the sequential rate of the same handler, and whether caps and exactly-once held.

The workload builders are shared with tests/integration/test_load.py, which runs them smaller.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from bench.stands import emulated_stack
from eks_capture.captures import indexer, trigger
from eks_capture.captures.deps import Deps
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import MotoServer, free_port
from localcloud.burst import (
    CLUSTER,
    NAMESPACE,
    alarm_burst,
    alarm_event,
    burst_nodes,
    capture_files,
    first_packets,
    live_captures_per_node,
    object_created,
    run_parallel,
    with_duplicates,
)
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.outages import DynamoDBProxy
from localcloud.provision import provision
from localcloud.template import Stack, load_template

OUT = Path(__file__).resolve().parent / "out"
BURST_NODES = 50
OBJECT_EVENTS = 10_000
COPIES = 20  # deliveries of each object: 500 objects keep moto's table (copied per transaction) small
REFERENCE_EVENTS = 200
CAPTURES_PER_RUN = 10
TRIGGER_WORKERS = 5  # the trigger's ReservedConcurrentExecutions in template.yaml
INDEXER_WORKERS = 32


def totals_exact(store: CaptureStore, capture_ids: Sequence[str]) -> bool:
    """Whether each session's totals equal the sum of its file items."""
    for capture_id in capture_ids:
        session = store.get_session(capture_id)
        files = store.files_of_capture(capture_id)
        if session is None or (session.totals.files, session.totals.packets) != (
            len(files),
            sum(f.packets for f in files),
        ):
            return False
    return True


def _trigger_rows(kube: KubeEmulator, settings: Settings) -> list[dict[str, Any]]:
    store = CaptureStore(settings.capture_table)
    deps = Deps(settings=settings, store=store)
    alone = alarm_event("eks-capture-alone", "alone", burst_nodes(kube, 1, "alone")[0][1])
    started = time.perf_counter()
    trigger.handle(alone, deps)
    one = time.perf_counter() - started
    events = alarm_burst(burst_nodes(kube, BURST_NODES))
    outcomes, seconds = run_parallel(lambda e: trigger.handle(e, deps), events, TRIGGER_WORKERS)
    live = live_captures_per_node(kube)
    captures = {j["metadata"]["labels"]["eks-capture.io/capture-id"] for j in kube.objects(JOBS, NAMESPACE)}
    return [
        {
            "workload": f"trigger: {len(events)} alarm events on {BURST_NODES} nodes, "
            f"{TRIGGER_WORKERS} workers",
            "events/s": round(len(events) / seconds, 1),
            "reference": "one alarm event alone",
            "reference events/s": round(1 / one, 1),
            "ratio": round(len(events) / seconds * one, 2),
            "outcomes": dict(Counter(o.status for o in outcomes)),
            "held": len(captures) <= settings.max_concurrent_captures and max(live.values(), default=0) <= 1,
        }
    ]


def _indexer_round(
    dynamodb: DynamoDBProxy, stack: Stack, events: int, workers: int, run: int
) -> tuple[Counter[str], float, bool]:
    """``events`` object events (each object delivered COPIES times) on ``workers`` threads: their
    outcomes, seconds, and whether the totals came out exact."""
    bucket, table = stack.name_of("CaptureBucket"), stack.name_of("CaptureIndexTable")
    store = CaptureStore(table, boto3.client("dynamodb", endpoint_url=dynamodb.endpoint_url))
    s3 = boto3.client("s3")
    body = first_packets(3)
    keys = capture_files(store, s3, bucket, events // COPIES, CAPTURES_PER_RUN, body, run)
    delivered = with_duplicates([object_created(bucket, k, body) for k in keys], COPIES)
    results, seconds = run_parallel(lambda e: indexer.handle(e, store, s3), delivered, workers)
    statuses: Counter[str] = Counter(o.status for batch in results for o in batch)
    exact = statuses["indexed"] == len(keys) and totals_exact(store, sorted({k.split("/")[2] for k in keys}))
    return statuses, seconds, exact


@contextmanager
def lean_moto() -> Iterator[MotoServer]:
    """A moto server without the costs that grow with a table (bench/lean_moto.py), for a ``with`` block."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.lean_moto", "-H", "127.0.0.1", "-p", str(port)]
    server = MotoServer(port, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/data.json", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


def peak_rss_mb(pid: int | None = None) -> float:
    """A process's peak resident memory (VmHWM), this one's by default."""
    if pid is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    status = Path(f"/proc/{pid}/status").read_text()
    kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return round(kilobytes / 1024, 1)


def _indexer_rows() -> list[dict[str, Any]]:
    """10,000 object events in one moto, beside one worker's rate on 400; moto's peak memory beside its
    memory once the stack is provisioned."""
    with lean_moto() as moto:
        os.environ.update(moto.env())
        stack = Stack(
            load_template(),
            "bench",
            {"ClusterNames": CLUSTER, "CaptureImageUri": "example.com/eks-capture@sha256:" + "0" * 64},
        )
        provision(stack)
        dynamodb = DynamoDBProxy(moto.endpoint_url)
        try:
            provisioned_mb = peak_rss_mb(moto.process.pid)
            _, reference_seconds, _ = _indexer_round(dynamodb, stack, REFERENCE_EVENTS, 1, 0)
            statuses, seconds, exact = _indexer_round(dynamodb, stack, OBJECT_EVENTS, INDEXER_WORKERS, 1)
            moto_mb = peak_rss_mb(moto.process.pid)
        finally:
            dynamodb.stop()
    events = sum(statuses.values())
    rate, reference_rate = events / seconds, REFERENCE_EVENTS / reference_seconds
    return [
        {
            "workload": f"indexer: {events} object events (each object {COPIES} times), "
            f"{INDEXER_WORKERS} workers",
            "events/s": round(rate, 1),
            "reference": f"{REFERENCE_EVENTS} such events on one worker",
            "reference events/s": round(reference_rate, 1),
            "ratio": round(rate / reference_rate, 2),
            "outcomes": dict(statuses),
            "held": exact,
            "moto peak RSS MB": moto_mb,
            "moto RSS once provisioned MB": provisioned_mb,
            "RSS ratio": round(moto_mb / provisioned_mb, 2),
        }
    ]


def main() -> None:
    logging.disable(logging.WARNING)  # thousands of refused and duplicate events would drown the table
    with emulated_stack(CLUSTER) as (kube, settings):
        rows = _trigger_rows(kube, settings)
    rows += _indexer_rows()
    for row in rows:
        print(
            f"{row['workload']:<72} {row['events/s']:>7} events/s; {row['reference']}: "
            f"{row['reference events/s']} events/s (x{row['ratio']}); "
            f"caps and exactly-once held: {row['held']}"
        )
        print(f"    outcomes: {row['outcomes']}")
    rows[-1]["bench peak RSS MB"] = peak_rss_mb()
    print(f"moto peak RSS {rows[-1]['moto peak RSS MB']} MB, this process {rows[-1]['bench peak RSS MB']} MB")
    print("moto runs every AWS call in one process: these rates are the local cloud's, not AWS's.")
    OUT.mkdir(exist_ok=True)
    (OUT / "load.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
