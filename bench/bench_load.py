"""Load benchmark: a burst of 200 alarm events (duplicates and flapping) over 50 nodes through the trigger
in parallel, and 10,000 S3 object events (each object 20 times) through the indexer in parallel; events
per second beside the sequential rate of the same handler, and whether caps and exactly-once held.

The workload builders are shared with tests/integration/test_load.py, which runs them smaller.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import boto3

from bench.stands import emulated_stack
from eks_capture.captures import indexer, trigger
from eks_capture.captures.deps import Deps
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, Trigger
from localcloud.aws import REGION, MotoServer, free_port
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.outages import DynamoDBProxy
from localcloud.provision import provision
from localcloud.template import PROJECT_ROOT, Stack, load_template

OUT = Path(__file__).resolve().parent / "out"
EVENTS = PROJECT_ROOT / "events"
CAPTURES = PROJECT_ROOT / "tests" / "fixtures" / "captures"
CLUSTER = "shop-prod"
NAMESPACE = "eks-capture"
BURST_NODES = 50
OBJECT_EVENTS = 10_000
COPIES = 20  # deliveries of each object: 500 objects keep moto's table (copied per transaction) small
REFERENCE_EVENTS = 200
CAPTURES_PER_RUN = 10
TRIGGER_WORKERS = 5  # the trigger's ReservedConcurrentExecutions in template.yaml
INDEXER_WORKERS = 32

T = TypeVar("T")
R = TypeVar("R")


def _sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def burst_nodes(kube: KubeEmulator, count: int, prefix: str = "burst") -> list[tuple[str, str]]:
    """``count`` fresh nodes in the emulated cluster: (node name, instance id)."""
    nodes = []
    for index in range(count):
        node = kube.add_node(f"{prefix}-{index:03d}.{REGION}.compute.internal", nodegroup=prefix)
        nodes.append((node["metadata"]["name"], node["spec"]["providerID"].rsplit("/", 1)[1]))
    return nodes


def alarm_event(alarm_name: str, event_id: str, instance_id: str) -> dict[str, Any]:
    """A CloudWatch alarm going to ALARM on one instance (events/alarm-single-metric-instance.json)."""
    event = _sample("alarm-single-metric-instance")
    event["id"] = event_id
    event["resources"] = [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm_name}"]
    event["detail"]["alarmName"] = alarm_name
    for query in event["detail"]["configuration"]["metrics"]:
        query["metricStat"]["metric"]["dimensions"]["InstanceId"] = instance_id
    return event


def alarm_burst(nodes: Sequence[tuple[str, str]], seed: int = 12) -> list[dict[str, Any]]:
    """Four events per node, shuffled: an alarm, its redelivery, the same alarm flapping back (a new
    event), and a second alarm on the same node."""
    events: list[dict[str, Any]] = []
    for index, (_name, instance_id) in enumerate(nodes):
        first = alarm_event(f"eks-capture-burst-{index}", f"burst-{index}", instance_id)
        events += [
            first,
            json.loads(json.dumps(first)),
            alarm_event(f"eks-capture-burst-{index}", f"burst-{index}-flapped", instance_id),
            alarm_event(f"eks-capture-second-{index}", f"second-{index}", instance_id),
        ]
    random.Random(seed).shuffle(events)
    return events


def object_created(bucket: str, key: str, size: int) -> dict[str, Any]:
    """The EventBridge "Object Created" event S3 sends for ``key``."""
    event = _sample("s3-object-created-eventbridge")
    event["id"] = f"object-{key}"
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, size=size)
    return event


def first_packets(count: int) -> bytes:
    """The real capture tests/fixtures/captures/any-nano-head.pcap cut after ``count`` packets (a small
    file keeps each index item small: moto copies the whole table on every transaction)."""
    data = (CAPTURES / "any-nano-head.pcap").read_bytes()
    end = 24
    for _ in range(count):
        end += 16 + int.from_bytes(data[end + 8 : end + 12], "little")
    return data[:end]


def capture_files(
    store: CaptureStore, s3: Any, bucket: str, objects: int, captures: int, body: bytes, run: int = 0
) -> list[str]:
    """``objects`` copies of ``body`` (a pcap) spread over ``captures`` sessions of their own (``run``
    tells apart the sessions of several calls); their keys."""
    started = datetime(2026, 11, 25, 3, 12, tzinfo=UTC)
    capture_ids = [f"cap-20261125T031200Z-{run:04x}{index:04x}" for index in range(captures)]
    for capture_id in capture_ids:
        store.create_session(
            CaptureSession(
                capture_id=capture_id,
                cluster=CLUSTER,
                created_at=started,
                expires_at=started + timedelta(minutes=5),
                duration_seconds=300,
                trigger=Trigger(kind="manual", reason="load", event_id=capture_id),
            )
        )
    keys = [
        f"captures/{CLUSTER}/{capture_ids[i % captures]}/node-{i % 7}/20261125T031200Z-{i:05d}.pcap"
        for i in range(objects)
    ]
    run_parallel(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys, INDEXER_WORKERS)
    return keys


def with_duplicates(events: list[T], copies: int, seed: int = 3) -> list[T]:
    """Each of ``events`` delivered ``copies`` times, shuffled (EventBridge delivers at least once)."""
    delivered = [event for event in events for _ in range(copies)]
    random.Random(seed).shuffle(delivered)
    return delivered


def run_parallel(handle: Callable[[T], R], items: Sequence[T], workers: int) -> tuple[list[R], float]:
    """Every item through ``handle`` on ``workers`` threads: the results in order, and the seconds."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(handle, items))
    return results, time.perf_counter() - started


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


def live_captures_per_node(kube: KubeEmulator) -> Counter[str]:
    """How many capture Jobs each node runs now."""
    return Counter(job["spec"]["template"]["spec"]["nodeName"] for job in kube.objects(JOBS, NAMESPACE))


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
    delivered = with_duplicates([object_created(bucket, k, len(body)) for k in keys], COPIES)
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
