"""Trigger benchmark: handler time for N nodes against the emulator with a per-request latency, beside
the sequential lower bound N x latency (target at N = 500: at most 15 % of it), and the handler's
cold-start import time beside ``import boto3, kubernetes`` alone.

The handler runs as in a warm container (its AWS clients and cluster token already made); the
emulator runs in a process of its own, as a remote API server does, and moto in another. With 32 calls
in flight, 500 nodes at 20 ms need 0.31 s of waiting; the rest is CPU. So each run also reports the CPU
each process used: the handler's, the emulator's (and of it, its control loop's: the controllers and
kubelets a real cluster runs on other machines) and moto's. One process cannot go faster than its CPU
time (one GIL), nor the run faster than all its CPU over the machine's cores: that floor is shown beside
the handler's time, and the CPU the goal leaves the handler beside what it used. Best of ``TRIALS`` (the
machine is shared).
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from py_compile import PycInvalidationMode
from typing import Any

from bench.stands import cpu_seconds, separate_stack
from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.kube import eks
from localcloud.aws import REGION
from localcloud.template import PROJECT_ROOT

OUT = Path(__file__).resolve().parent / "out"
LATENCY_SECONDS = 0.02
TRIALS = 3
COLD_START_TRIALS = 7
NODE_COUNTS = (1, 50, 500)
GOAL = 0.15  # of N x latency, at the largest N (issue 20)
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


@dataclass(frozen=True)
class Run:
    """One Start Capture: its time, the Jobs it created and the CPU seconds it cost each process."""

    seconds: float
    jobs: int
    handler_cpu: float
    emulator_cpu: float
    moto_cpu: float
    controllers_cpu: float  # the part of emulator_cpu that a real cluster spends on other machines

    def cpu_floor(self) -> float:
        """The least time this CPU allows: one process's CPU (one GIL), or all of it over every core."""
        total = self.handler_cpu + self.emulator_cpu + self.moto_cpu
        return max(self.handler_cpu, self.emulator_cpu, self.moto_cpu, total / (os.cpu_count() or 1))


def handler_run(nodes: int, latency: float = LATENCY_SECONDS) -> Run:
    """One Start Capture on ``nodes`` nodes: seconds, Jobs created and CPU used."""
    with separate_stack(CLUSTER, MAX_NODES_PER_CAPTURE=str(max(nodes, 1)), API_PARALLELISM="32") as stands:
        for index in range(nodes):
            stands.kube.add_node(f"node-{index:04d}")
        deps = Deps.for_settings(stands.settings, uses=trigger.AWS_CLIENTS)  # as a warm container holds them
        eks.api_client(CLUSTER)  # the token and client a warm container already holds
        stands.kube.add_latency(latency)
        pids = (stands.kube.pid, stands.moto.process.pid)
        controllers = stands.kube.controllers_cpu()
        cpu, (kube_cpu, moto_cpu) = time.process_time(), map(cpu_seconds, pids)
        started = time.perf_counter()
        outcome = trigger.handle(_start_event(CLUSTER), deps)
        seconds = time.perf_counter() - started
        kube_after, moto_after = map(cpu_seconds, pids)
        return Run(
            seconds,
            len(outcome.nodes),
            time.process_time() - cpu,
            kube_after - kube_cpu,
            moto_after - moto_cpu,
            stands.kube.controllers_cpu() - controllers,
        )


def best_run(nodes: int, latency: float = LATENCY_SECONDS) -> Run:
    """The fastest of ``TRIALS`` runs."""
    return min((handler_run(nodes, latency) for _ in range(TRIALS)), key=lambda run: run.seconds)


def import_seconds(codes: tuple[str, ...], env: dict[str, str]) -> list[float]:
    """Wall time of a fresh interpreter running each of ``codes`` (cold starts): they alternate, so a
    busy moment of the shared machine falls on each alike; best of ``COLD_START_TRIALS`` each."""
    best = [float("inf")] * len(codes)
    for _ in range(COLD_START_TRIALS):
        for index, code in enumerate(codes):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=PROJECT_ROOT)
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[int, Run] = {}
    for nodes in NODE_COUNTS:
        run = runs[nodes] = best_run(nodes)
        bound = nodes * LATENCY_SECONDS
        rows.append(
            {
                "figure": f"trigger handler, {nodes} node(s), {LATENCY_SECONDS * 1000:.0f} ms a request",
                "seconds": round(run.seconds, 3),
                "jobs": run.jobs,
                "reference": "sequential lower bound N x latency",
                "reference_seconds": round(bound, 3),
                "ratio": f"{run.seconds / bound:.1%}",
            }
        )
    nodes = NODE_COUNTS[-1]
    run = runs[nodes]
    rows.append(
        {
            "figure": (
                f"trigger handler, {nodes} nodes: CPU used, handler {run.handler_cpu:.2f} s, "
                f"emulator {run.emulator_cpu:.2f} s (its controllers and kubelets "
                f"{run.controllers_cpu:.2f} s), moto {run.moto_cpu:.2f} s"
            ),
            "seconds": round(run.seconds, 3),
            "reference": f"CPU floor on {os.cpu_count()} cores (one process's CPU, or all CPU / cores)",
            "reference_seconds": round(run.cpu_floor(), 3),
            "ratio": f"floor is {run.cpu_floor() / (nodes * LATENCY_SECONDS):.1%} of N x latency",
        }
    )
    cores = os.cpu_count() or 1
    allowance = GOAL * nodes * LATENCY_SECONDS * cores - run.emulator_cpu - run.moto_cpu
    rows.append(
        {
            "figure": (
                f"trigger handler, {nodes} nodes: the handler's CPU "
                f"({run.handler_cpu / nodes * 1000:.2f} ms a node)"
            ),
            "seconds": round(run.handler_cpu, 3),
            "reference": (
                f"the CPU the goal ({GOAL:.0%} of N x latency) leaves the handler on {cores} cores "
                "beside the stand-ins' CPU"
            ),
            "reference_seconds": round(allowance, 3),
            "ratio": f"{run.handler_cpu / allowance:.2f}x" if allowance > 0 else "none left",
        }
    )
    unloaded = best_run(nodes, latency=0.0)
    hidden = (run.seconds - unloaded.seconds) / (nodes * LATENCY_SECONDS)
    rows.append(
        {
            "figure": f"trigger handler, {nodes} nodes, no injected latency (the local stand-ins' own CPU)",
            "seconds": round(unloaded.seconds, 3),
            "reference": "the same run with latency (above)",
            "reference_seconds": round(run.seconds, 3),
            "ratio": f"latency adds {max(hidden, 0.0):.1%} of N x latency",
        }
    )
    # As Lambda runs it: LAMBDA_TASK_ROOT is what tells the X-Ray SDK and Powertools' Tracer they are in a
    # function (the Tracer on, its patches made, the SDK's local sampler); without it the SDK's recorder
    # makes two X-Ray API clients for its sampling rules at import, ~0.1 s a function never spends.
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": str(PROJECT_ROOT / "functions" / "trigger"),
        "POWERTOOLS_SERVICE_NAME": "trigger",
        "CAPTURE_BUCKET": "bench-bucket",
        "CAPTURE_TABLE": "bench-table",
        "CAPTURE_IMAGE": "example.com/eks-capture@sha256:" + "0" * 64,
    }
    # Our modules with their bytecode, as the build ships them (make build-stack compiles it), as the
    # reference's packages have theirs (uv sync --compile-bytecode): PYTHONDONTWRITEBYTECODE in a runner's
    # environment would otherwise have every run compile ours again.
    checked = PycInvalidationMode.CHECKED_HASH
    compileall.compile_dir(PROJECT_ROOT / "layers", quiet=1, invalidation_mode=checked)
    handler = "import runpy; runpy.run_path('functions/trigger/app.py')"
    baseline = "import boto3, kubernetes"
    ours, theirs = import_seconds((handler, baseline), env)
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
