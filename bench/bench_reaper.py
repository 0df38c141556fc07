"""Reaper benchmark: one sweep's time and API calls for 10, 1,000 and 10,000 expired capture pods.

The reference is the sweep's floor on the same emulator: the two paginated lists alone (what any
sweep must read), timed in the same run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stands import NAMESPACE, emulated_stack
from eks_capture.captures import reaper
from eks_capture.captures.deps import Deps
from eks_capture.captures.options import CaptureOptions
from eks_capture.kube.calls import Cluster
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from eks_capture.store.catalog import CaptureStore
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


def main() -> None:
    reaper.logger.setLevel("ERROR")  # one warning per orphan job would drown the figures
    OUT.mkdir(exist_ok=True)
    rows = [sweep_figures(pods) for pods in POD_COUNTS]
    for row in rows:
        print(json.dumps(row))
    (OUT / "reaper.json").write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
