"""Load benchmark: a burst of 200 alarm events (duplicates and flapping) over 50 nodes through the trigger
in parallel, and 10,000 S3 object events (10 % delivered twice) through the indexer in parallel; events
per second beside the sequential rate of the same handler, and whether caps and exactly-once held.

The workload builders are shared with tests/integration/test_load.py, which runs them smaller.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3

from eks_capture import eks, indexer, trigger
from eks_capture.sessions import CaptureSession, CaptureStore, Trigger
from eks_capture.settings import Settings
from localcloud.aws import REGION, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.kube.resources import JOBS, NAMESPACES
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
REFERENCE_EVENTS = 400
ROUND_EVENTS = 2_000
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


class SerialDynamoDB:
    """An HTTP forwarder to moto that passes one DynamoDB request at a time.

    moto's TransactWriteItems snapshots each table it touches and, when a condition fails, puts the
    snapshot back, undoing whatever other requests wrote meanwhile; DynamoDB isolates transactions
    per item. Serialized, moto's answers are the ones DynamoDB could give, so a load run measures our
    conditional writes rather than moto's rollback.
    """

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self._lock = threading.Lock()
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                status, reply, reply_headers = forwarder.forward(self.path, body, headers)
                self.send_response(status)
                for name, value in reply_headers:
                    if name.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def forward(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """One request to moto, alone."""
        with self._lock:
            connection = HTTPConnection(self.target.hostname or "127.0.0.1", self.target.port, timeout=60)
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                return response.status, response.read(), response.getheaders()
            finally:
                connection.close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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


def _environment(kube: KubeEmulator) -> Settings:
    stack = Stack(load_template(), "bench", {"ClusterName": CLUSTER, "CaptureImageUri": "img:bench"})
    provision(stack)
    env = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"])
    os.environ.update({k: str(v) for k, v in {**env, **kube.env()}.items()})
    kube.registry.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
    eks.clear_caches()
    return Settings.from_env()


def _trigger_rows(kube: KubeEmulator, settings: Settings) -> list[dict[str, Any]]:
    store = CaptureStore(settings.capture_table)
    deps = trigger.Deps(settings=settings, store=store)
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


def _indexer_round(events: int, workers: int, run: int) -> tuple[Counter[str], float, bool]:
    """``events`` object events (each object delivered COPIES times) on ``workers`` threads, in a fresh
    moto: its outcomes, seconds, and whether the totals came out exact."""
    moto = start_moto_server()
    os.environ.update(moto.env())
    serial = SerialDynamoDB(moto.endpoint_url)
    try:
        stack = Stack(load_template(), "bench", {"ClusterName": CLUSTER, "CaptureImageUri": "img:bench"})
        provision(stack)
        bucket, table = stack.name_of("CaptureBucket"), stack.name_of("CaptureIndexTable")
        store = CaptureStore(table, boto3.client("dynamodb", endpoint_url=serial.endpoint_url))
        s3 = boto3.client("s3")
        body = first_packets(3)
        keys = capture_files(store, s3, bucket, events // COPIES, CAPTURES_PER_RUN, body, run)
        delivered = with_duplicates([object_created(bucket, k, len(body)) for k in keys], COPIES)
        results, seconds = run_parallel(lambda e: indexer.handle(e, store, s3), delivered, workers)
        statuses: Counter[str] = Counter(o.status for batch in results for o in batch)
        exact = statuses["indexed"] == len(keys) and totals_exact(
            store, sorted({k.split("/")[2] for k in keys})
        )
        return statuses, seconds, exact
    finally:
        serial.stop()
        moto.stop()


def _indexer_rows() -> list[dict[str, Any]]:
    """10,000 object events in rounds of a fresh moto each (moto keeps the table copies its
    transactions make: one run of 10,000 grew it past 8 GB), beside one worker's rate."""
    _ref_statuses, reference_seconds, _ = _indexer_round(REFERENCE_EVENTS, 1, 0)
    statuses: Counter[str] = Counter()
    seconds, exact = 0.0, True
    for run in range(1, OBJECT_EVENTS // ROUND_EVENTS + 1):
        round_statuses, round_seconds, round_exact = _indexer_round(ROUND_EVENTS, INDEXER_WORKERS, run)
        statuses += round_statuses
        seconds += round_seconds
        exact = exact and round_exact
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
        }
    ]


def main() -> None:
    logging.disable(logging.WARNING)  # thousands of refused and duplicate events would drown the table
    moto = start_moto_server()
    os.environ.update(moto.env())
    create_eks_cluster(CLUSTER)
    kube = start_kube_emulator(CLUSTER, moto.endpoint_url, REGION)
    try:
        rows = _trigger_rows(kube, _environment(kube))
    finally:
        kube.stop()
        moto.stop()
        eks.clear_caches()
    rows += _indexer_rows()
    for row in rows:
        print(
            f"{row['workload']:<72} {row['events/s']:>7} events/s; {row['reference']}: "
            f"{row['reference events/s']} events/s (x{row['ratio']}); "
            f"caps and exactly-once held: {row['held']}"
        )
        print(f"    outcomes: {row['outcomes']}")
    print("moto runs every AWS call in one process: these rates are the local cloud's, not AWS's.")
    OUT.mkdir(exist_ok=True)
    (OUT / "load.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
