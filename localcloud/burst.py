"""Bursts of real-shaped events for the load tests and the benchmarks: fresh nodes, alarm storms with
redeliveries and flaps, S3 object events for real capture files, and a thread pool to push them through.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, Trigger
from localcloud.aws import REGION
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.template import PROJECT_ROOT

EVENTS = PROJECT_ROOT / "events"
CAPTURES = PROJECT_ROOT / "tests" / "fixtures" / "captures"
CLUSTER = "shop-prod"
NAMESPACE = "eks-capture"
UPLOAD_WORKERS = 32  # parallel puts of the burst's capture files

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


def object_created(bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """The EventBridge "Object Created" event S3 sends when one PutObject stores ``body`` at ``key``: its
    size, and its ETag (a single PUT's is the body's MD5), which the indexer reads the object IfMatch."""
    event = _sample("s3-object-created-eventbridge")
    event["id"] = f"object-{key}"
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    event["detail"]["object"].update(key=key, size=len(body), etag=etag)
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
    run_parallel(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys, UPLOAD_WORKERS)
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


def live_captures_per_node(kube: KubeEmulator) -> Counter[str]:
    """How many capture Jobs each node runs now."""
    return Counter(job["spec"]["template"]["spec"]["nodeName"] for job in kube.objects(JOBS, NAMESPACE))
