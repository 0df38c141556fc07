"""The Kubernetes emulator under load, through the production client (eks_capture.kube.eks) over HTTPS.

Rows: creating pods sequentially and with 32 threads under an injected per-request latency, beside
the lower bound N x latency (/ threads); listing 20,000 pods in pages of 500 as raw JSON, beside
json.loads of the same bytes; one controller/kubelet pass over 10,000 running pods, beside merely
walking them.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from eks_capture.kube import eks
from localcloud.aws import REGION, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.kube import PODS, start_kube_emulator

OUT = Path(__file__).resolve().parent / "out"
CLUSTER = "bench-cluster"
LATENCY = 0.02
THREADS = 32


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "eks-capture"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


def create(core: client.CoreV1Api, name: str, node: str) -> bytes:
    """Create a pod, reading the answer: an unread raw response keeps its pooled connection."""
    response: Any = core.create_namespaced_pod("default", pod(name, node), _preload_content=False)  # type: ignore[arg-type]
    return bytes(response.data)


def list_page(core: client.CoreV1Api, token: str | None) -> bytes:
    """One page of 500 pods as the raw JSON bytes."""
    response: Any = core.list_namespaced_pod("default", limit=500, _continue=token, _preload_content=False)
    return bytes(response.data)


def row(what: str, n: int, seconds: float, reference: str, reference_seconds: float) -> dict[str, Any]:
    return {
        "measure": what,
        "n": n,
        "seconds": round(seconds, 3),
        "reference": reference,
        "reference seconds": round(reference_seconds, 3),
        "ratio": round(seconds / reference_seconds, 2) if reference_seconds else "",
    }


def main() -> None:
    moto = start_moto_server()
    os.environ.update(moto.env())
    kube = start_kube_emulator(CLUSTER, moto.endpoint_url, REGION, create_eks_cluster(CLUSTER))
    os.environ.update(kube.env())
    rows = []
    try:
        for index in range(50):
            kube.add_node(f"node-{index:02d}")
        core = client.CoreV1Api(eks.api_client(CLUSTER, pool_size=THREADS))
        core.list_namespace()
        kube.faults.add_latency(LATENCY, verb="create", resource="pods")

        count = 200
        started = time.perf_counter()
        for index in range(count):
            create(core, f"seq-{index}", "node-00")
        rows.append(
            row(
                "create pods, sequential",
                count,
                time.perf_counter() - started,
                "N x latency",
                count * LATENCY,
            )
        )

        count = 500
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda i: create(core, f"par-{i}", f"node-{i % 50:02d}"), range(count)))
        rows.append(
            row(
                f"create pods, {THREADS} threads",
                count,
                time.perf_counter() - started,
                f"N x latency / {THREADS}",
                count * LATENCY / THREADS,
            )
        )
        kube.faults.clear()

        total = 20_000
        for index in range(total - 700):
            kube.create(PODS, "default", pod(f"bulk-{index:05d}", f"node-{index % 50:02d}"))
        kube.settle(timeout=60)
        started = time.perf_counter()
        token, raw, items = None, [], 0
        while True:
            data = list_page(core, token)
            raw.append(data)
            page = json.loads(data)
            items += len(page["items"])
            token = page["metadata"].get("continue")
            if not token:
                break
        listed = time.perf_counter() - started
        started = time.perf_counter()
        for data in raw:
            json.loads(data)
        rows.append(
            row(
                "list pods, pages of 500",
                items,
                listed,
                "json.loads of the pages",
                time.perf_counter() - started,
            )
        )

        kube.tick()
        started = time.perf_counter()
        kube.tick()
        ticked = time.perf_counter() - started
        started = time.perf_counter()
        walked = sum(1 for p in kube.objects(PODS) if p["status"].get("phase") == "Running")
        rows.append(
            row(
                "controller+kubelet pass", walked, ticked, "walk the pods once", time.perf_counter() - started
            )
        )
    finally:
        kube.stop()
        moto.stop()
    OUT.mkdir(exist_ok=True)
    (OUT / "kube.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"{'measure':<32} {'n':>6} {'seconds':>8}  {'reference':<26} {'ref s':>7} {'ratio':>6}")
    for item in rows:
        print(
            f"{item['measure']:<32} {item['n']:>6} {item['seconds']:>8}  {item['reference']:<26} "
            f"{item['reference seconds']:>7} {item['ratio']:>6}"
        )


if __name__ == "__main__":
    main()
