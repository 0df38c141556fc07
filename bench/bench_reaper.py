"""Reaper benchmark: one sweep's time and API calls for 10, 1,000 and 10,000 expired capture pods, and
one sweep of a capture of 1,000 nodes kept open while its files are not indexed.

The reference is the sweep's floor on the same emulator: the two paginated lists alone (what any
sweep must read), timed in the same run; for the waiting capture, the sweep that closes it once its
files are indexed (the same reads, and the close's writes), timed in the same run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.stands import NAMESPACE, emulated_stack
from eks_capture.captures import reaper
from eks_capture.captures.deps import Deps
from eks_capture.captures.indexer import index_object
from eks_capture.captures.options import CaptureOptions
from eks_capture.events.s3 import S3ObjectRef
from eks_capture.kube.calls import Cluster
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger
from localcloud.kube.resources import JOBS

OUT = Path(__file__).resolve().parent / "out"
POD_COUNTS = (10, 1000, 10000)
CLUSTER = "bench-cluster"


def sweep_figures(pods: int) -> dict[str, Any]:
    """Seconds and API calls of one sweep over ``pods`` expired capture pods, beside the lists alone."""
    with emulated_stack(CLUSTER, API_PARALLELISM="32") as (kube, settings):
        kube.add_node("node-0")
        started = datetime.now(UTC) - timedelta(hours=3)
        for index in range(pods):
            spec = CaptureSpec(
                capture_id=f"cap-20261125T000000Z-{index:08x}",  # type: ignore[arg-type]
                cluster=CLUSTER,
                options=CaptureOptions.defaults(settings),
                reason="bench",
                started_at=started,
            )
            kube.create(JOBS, NAMESPACE, capture_job(spec, NodeInfo(name="node-0"), settings))
        kube.settle(timeout=600)
        cluster = Cluster(CLUSTER)
        floor_started = time.perf_counter()
        cluster.capture_jobs(NAMESPACE)
        cluster.capture_pods(NAMESPACE)
        floor = time.perf_counter() - floor_started
        kube.calls.reset()
        deps = Deps(settings=settings, store=CaptureStore(settings.capture_table))
        sweep_started = time.perf_counter()
        [report] = reaper.sweep(deps, [CLUSTER])
        seconds = time.perf_counter() - sweep_started
        return {
            "figure": f"one sweep, {pods} expired capture pods",
            "seconds": round(seconds, 3),
            "deleted": report.deleted.total(),
            "api_calls": kube.calls.total(),
            "list_calls": kube.calls.total("list"),
            "reference": "the two paginated lists alone",
            "reference_seconds": round(floor, 3),
            "ratio": f"{seconds / floor:.1f}x",
        }


def waiting_figures(nodes: int) -> dict[str, Any]:
    """Seconds of one sweep of a capture of ``nodes`` finished nodes whose manifests each list a file not
    indexed yet (the wait's steady state: up to INDEX_WAIT_SECONDS of sweeps), beside the sweep that then
    closes it, its files indexed as listed."""
    with emulated_stack(CLUSTER) as (_, settings):
        store = CaptureStore(settings.capture_table)
        now, capture_id = datetime.now(UTC), "cap-20261125T000000Z-0000beef"
        prefix = f"captures/{CLUSTER}/{capture_id}/"
        names = [f"ip-10-0-{i // 256}-{i % 256}.us-west-2.compute.internal" for i in range(nodes)]
        store.create_session(
            CaptureSession(
                capture_id=capture_id,
                cluster=CLUSTER,
                status="running",
                trigger=Trigger(kind="manual", reason="bench", event_id="bench"),
                created_at=now - timedelta(minutes=20),
                expires_at=now - timedelta(minutes=10),
                duration_seconds=300,
                s3_prefix=prefix,
                nodes={
                    name: NodeCapture(node=name, job=f"job-{i}", status="completed")
                    for i, name in enumerate(names)
                },
            )
        )
        s3, empty = (
            boto3.client("s3"),
            b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00\x01\x00\x00\x00",
        )
        for name in names:
            key = f"{prefix}{name}/20261125T000000Z-00000.pcap"
            s3.put_object(Bucket=settings.capture_bucket, Key=key, Body=empty)
            listed = {"key": key, "packets": 0, "stored_bytes": len(empty)}
            manifest = {"files": [listed], "totals": {"packets": 0}, "written_at": now.isoformat()}
            s3.put_object(
                Bucket=settings.capture_bucket,
                Key=f"{prefix}{name}/manifest.json",
                Body=json.dumps(manifest).encode(),
            )
        deps = Deps(settings=settings, store=store)
        [first] = reaper.sweep(deps, [CLUSTER])  # the wait's first sweep
        started = time.perf_counter()
        [waiting] = reaper.sweep(deps, [CLUSTER])
        seconds = time.perf_counter() - started
        for name in names:
            ref = S3ObjectRef(
                settings.capture_bucket, f"{prefix}{name}/20261125T000000Z-00000.pcap", None, None, None
            )
            index_object(ref, store, s3)
        started = time.perf_counter()
        [closing] = reaper.sweep(deps, [CLUSTER])
        closed = time.perf_counter() - started
        assert first.awaiting_index == waiting.awaiting_index == {capture_id: nodes}, (first, waiting)
        assert closing.closed == {capture_id: "completed"} or closing.closed == {capture_id: "failed"}, (
            closing
        )
        return {
            "figure": f"one sweep of a capture of {nodes} nodes waiting for its index",
            "seconds": round(seconds, 3),
            "reference": "the sweep closing it once indexed",
            "reference_seconds": round(closed, 3),
            "ratio": f"{seconds / closed:.2f}x",
        }


def main() -> None:
    reaper.logger.setLevel("ERROR")  # one warning per orphan job would drown the figures
    OUT.mkdir(exist_ok=True)
    rows = [sweep_figures(pods) for pods in POD_COUNTS] + [waiting_figures(1000)]
    for row in rows:
        print(json.dumps(row))
    (OUT / "reaper.json").write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
