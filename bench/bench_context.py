"""Cluster context snapshots (eks_capture.captures.context) for 100, 5,000 and 20,000 pods in the emulator.

Through the production client over HTTPS, as the trigger takes them: one paginated list of pods and
one of services (nodes come from the trigger's own listing). Each row puts the snapshot's time (best of
three) beside merely fetching the same pages (the API's share), and the stored context.json.gz beside
the bytes the API sent; the last columns are the IP -> name mapping the indexer builds from it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from eks_capture.captures.context import decode, encode, snapshot
from eks_capture.kube import eks
from eks_capture.kube.calls import PAGE_SIZE, Cluster
from localcloud.aws import REGION, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.kube import PODS, start_kube_emulator
from localcloud.kube.resources import NAMESPACES, SERVICES

OUT = Path(__file__).resolve().parent / "out"
CLUSTER = "bench-context"
SIZES = (100, 5_000, 20_000)
NODES = 100
NAMESPACE_COUNT = 40
PODS_PER_SERVICE = 20
REPEATS = 3  # the best of three: the emulator's controller loop runs beside the listing


def _pod(index: int) -> tuple[str, dict[str, Any]]:
    workload = f"svc-{index // PODS_PER_SERVICE:04d}"
    template_hash = "7f9c6d5b8"
    ip = f"10.{64 + index // 65536}.{index // 256 % 256}.{index % 256}"
    return f"ns-{index % NAMESPACE_COUNT:02d}", {
        "metadata": {
            "name": f"{workload}-{template_hash}-{index:05d}",
            "labels": {"app.kubernetes.io/name": workload, "pod-template-hash": template_hash},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{workload}-{template_hash}",
                    "uid": f"uid-{workload}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{index % NODES:03d}",
            "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.36"}],
        },
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _service(index: int) -> tuple[str, dict[str, Any]]:
    return f"ns-{index % NAMESPACE_COUNT:02d}", {
        "metadata": {"name": f"svc-{index:04d}"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def _fetch_only(api: client.ApiClient) -> tuple[float, int, int]:
    """Seconds, bytes and pages to fetch the same lists without reducing them."""
    core = client.CoreV1Api(api)
    calls: tuple[Any, ...] = (core.list_pod_for_all_namespaces, core.list_service_for_all_namespaces)
    started = time.perf_counter()
    size = pages = 0
    for call in calls:
        token = None
        while True:
            data = call(limit=PAGE_SIZE, _continue=token, _preload_content=False).data
            size, pages = size + len(data), pages + 1
            token = json.loads(data)["metadata"].get("continue")
            if not token:
                break
    return time.perf_counter() - started, size, pages


def main() -> None:
    moto = start_moto_server()
    os.environ.update(moto.env())
    kube = start_kube_emulator(CLUSTER, moto.endpoint_url, REGION, create_eks_cluster(CLUSTER))
    os.environ.update(kube.env())
    rows: list[dict[str, Any]] = []
    try:
        for index in range(NODES):
            kube.add_node(f"node-{index:03d}")
        for index in range(NAMESPACE_COUNT):
            kube.create(NAMESPACES, None, {"metadata": {"name": f"ns-{index:02d}"}})
        api = eks.api_client(CLUSTER)
        nodes = Cluster(CLUSTER, api).nodes()
        created = services = 0
        for size in SIZES:
            while created < size:
                kube.create(PODS, *_pod(created))
                created += 1
            while services < size // PODS_PER_SERVICE:
                kube.create(SERVICES, *_service(services))
                services += 1
            kube.settle(timeout=120)
            fetches, snapshots = [], []
            for _ in range(REPEATS):
                fetches.append(_fetch_only(api))
                started = time.perf_counter()
                context = snapshot(
                    Cluster(CLUSTER, api), taken_at=datetime.now(UTC), capture_id="cap-bench", nodes=nodes
                )
                snapshots.append(time.perf_counter() - started)
            fetch_seconds, api_bytes, pages = min(fetches)
            seconds = min(snapshots)
            stored = encode(context)
            started = time.perf_counter()
            names = decode(stored).names()
            names_seconds = time.perf_counter() - started
            rows.append(
                {
                    "pods": len(context.pods),
                    "services": len(context.services),
                    "nodes": len(context.nodes),
                    "pages": pages,
                    "snapshot s": round(seconds, 3),
                    "fetch only s": round(fetch_seconds, 3),
                    "ratio": round(seconds / fetch_seconds, 2),
                    "API KB": round(api_bytes / 1024),
                    "stored KB": round(len(stored) / 1024, 1),
                    "JSON KB": round(len(context.model_dump_json(exclude_defaults=True)) / 1024),
                    "names": len(names),
                    "load+names s": round(names_seconds, 3),
                }
            )
    finally:
        kube.stop()
        moto.stop()
    OUT.mkdir(exist_ok=True)
    (OUT / "context.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    header = list(rows[0])
    print("  ".join(f"{column:>12}" for column in header))
    for item in rows:
        print("  ".join(f"{item[column]!s:>12}" for column in header))


if __name__ == "__main__":
    main()
