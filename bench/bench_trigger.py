"""Trigger benchmark: handler time for N nodes against the emulator with a per-request latency, beside
the sequential lower bound N x latency (target at N = 500: at most 15 % of it), and the handler's
cold-start import time beside ``import boto3, kubernetes`` alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.stands import emulated_stack
from eks_capture.captures import trigger
from eks_capture.captures.plan import Deps
from eks_capture.kube import eks
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import REGION
from localcloud.template import PROJECT_ROOT

OUT = Path(__file__).resolve().parent / "out"
LATENCY_SECONDS = 0.02
NODE_COUNTS = (1, 50, 500)
CLUSTER = "bench-cluster"


def _start_event(cluster: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Start Capture",
        "source": "eks-capture",
        "account": "123456789012",
        "time": "2026-11-25T03:12:00Z",
        "region": REGION,
        "resources": [],
        "detail": {"cluster": cluster, "targets": {"all": True}, "reason": "benchmark"},
    }


def handler_seconds(nodes: int, latency: float = LATENCY_SECONDS) -> tuple[float, int]:
    """Seconds for one Start Capture on ``nodes`` nodes, and the Jobs it created."""
    with emulated_stack(CLUSTER, MAX_NODES_PER_CAPTURE=str(max(nodes, 1)), API_PARALLELISM="32") as (
        kube,
        settings,
    ):
        for index in range(nodes):
            kube.add_node(f"node-{index:04d}")
        deps = Deps(settings=settings, store=CaptureStore(settings.capture_table))
        eks.api_client(CLUSTER)  # the token and client a warm container already holds
        kube.faults.add_latency(latency)
        started = time.perf_counter()
        outcome = trigger.handle(_start_event(CLUSTER), deps)
        return time.perf_counter() - started, len(outcome.nodes)


def import_seconds(code: str, env: dict[str, str]) -> float:
    """Median wall time of a fresh interpreter running ``code`` (cold start), over five runs."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=PROJECT_ROOT)
        runs.append(time.perf_counter() - started)
    return sorted(runs)[2]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    for nodes in NODE_COUNTS:
        seconds, jobs = handler_seconds(nodes)
        bound = nodes * LATENCY_SECONDS
        rows.append(
            {
                "figure": f"trigger handler, {nodes} node(s), {LATENCY_SECONDS * 1000:.0f} ms a request",
                "seconds": round(seconds, 3),
                "jobs": jobs,
                "reference": "sequential lower bound N x latency",
                "reference_seconds": round(bound, 3),
                "ratio": f"{seconds / bound:.1%}",
            }
        )
    nodes = NODE_COUNTS[-1]
    unloaded, _ = handler_seconds(nodes, latency=0.0)
    with_latency = float(rows[-1]["seconds"])
    hidden = (with_latency - unloaded) / (nodes * LATENCY_SECONDS)
    rows.append(
        {
            "figure": f"trigger handler, {nodes} nodes, no injected latency (the local stand-ins' own CPU)",
            "seconds": round(unloaded, 3),
            "reference": "the same run with latency (above)",
            "reference_seconds": with_latency,
            "ratio": f"latency adds {max(hidden, 0.0):.1%} of N x latency",
        }
    )
    env = {
        **os.environ,
        "CAPTURE_BUCKET": "bench-bucket",
        "CAPTURE_TABLE": "bench-table",
        "CAPTURE_IMAGE": "example.com/eks-capture@sha256:" + "0" * 64,
    }
    handler = "import runpy; runpy.run_path('functions/trigger/app.py')"
    baseline = "import boto3, kubernetes"
    ours, theirs = import_seconds(handler, env), import_seconds(baseline, env)
    rows.append(
        {
            "figure": "cold start: import the trigger handler module",
            "seconds": round(ours, 3),
            "reference": "import boto3, kubernetes",
            "reference_seconds": round(theirs, 3),
            "ratio": f"{ours / theirs:.2f}x",
        }
    )
    for row in rows:
        print(json.dumps(row))
    (OUT / "trigger.json").write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
