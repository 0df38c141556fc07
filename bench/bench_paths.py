"""Path analysis of two ~1 M-packet node captures beside ``eks-capture analyze`` on the same packets.

Node ``a`` uploads to node ``b`` on four connections through a router that drops 0.5 % of the packets
each way (tests/fixtures/paths.py); tcpdump captures both nodes (128-byte snap length, as the recorder
uses) until each has seen ``PACKETS``. The captures are cached in bench/out/. Each run is a child process
(its own peak RSS); the ratio compares the CPU time of the path analysis of both files with that of
``analyze`` of each file, the packets both read (CPU time: the 2 cores are often shared while benchmarks
run, wall time is shown beside it), best of ``TRIALS``. The router's counters are printed beside the
analysis' lost-between counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localcloud.netns import can_make_namespaces
from tests.fixtures.paths import dropped, random_drop, two_nodes
from tests.fixtures.traffic import AGENTS, start_capture, stop_capture

OUT = Path(__file__).resolve().parent / "out"
FILES = {"a": OUT / "paths-a-1m.pcap", "b": OUT / "paths-b-1m.pcap"}
TRUTH = OUT / "paths-truth.json"
PACKETS = 1_000_000
SNAPLEN = 128
DROP_PROBABILITY = 0.005
TRIALS = 3
PATHS = """
import json, resource, sys, time
from eks_capture.pcap.paths import analyze_paths
from eks_capture.pcap.reader import CaptureReader
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    summary = analyze_paths([("a", CaptureReader(a)), ("b", CaptureReader(b))])
seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_started
lost = {node: sum(f.lost_between for f in summary.flows if f.from_node == node) for node in "ab"}
flight = {node: sum(f.in_flight for f in summary.flows if f.from_node == node) for node in "ab"}
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "packets": sum(summary.packets.values()),
                  "lost": lost,
                  "in_flight": flight, "offset_ms": summary.clocks[0].offset_ms if summary.clocks else None,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
ANALYZE = """
import json, resource, sys, time
from eks_capture.pcap import analyze_file
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
summary = analyze_file(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu() - cpu_started,
                  "packets": summary.packets}))
"""


def make_captures() -> None:
    """Capture both nodes of the lossy upload until each has ``PACKETS`` packets (cached, with the truth)."""
    if all(path.exists() for path in FILES.values()) and TRUTH.exists():
        return
    if not can_make_namespaces():
        raise SystemExit("making the captures needs root with ip, tcpdump and ethtool")
    OUT.mkdir(exist_ok=True)
    with two_nodes("bp") as net:
        router = net["network"]
        random_drop(router, "FORWARD", DROP_PROBABILITY, "-i", "to-a", "-o", "to-b")
        random_drop(router, "FORWARD", DROP_PROBABILITY, "-i", "to-b", "-o", "to-a")
        serving = net["b"].popen([sys.executable, AGENTS, "serve"], stdout=subprocess.PIPE)
        assert serving.stdout is not None
        serving.stdout.readline()
        captures = {
            name: start_capture(
                net[name],
                ["tcpdump", "-i", "eth0", "-s", str(SNAPLEN), "-B", "262144", "-w", str(FILES[name])],
                "listening on",
            )
            for name in FILES
        }
        load = net["a"].popen([sys.executable, AGENTS, "bulk", net["b"].ip, "320", "4"])
        try:
            load.wait(timeout=600)
            time.sleep(1.5)  # tcpdump hands over a buffer block after its 1 s timeout
        finally:
            for process in captures.values():
                stop_capture(process)
            serving.kill()
            serving.wait()
        truth = {"a": dropped_between(router, "to-a   to-b"), "b": dropped_between(router, "to-b   to-a")}
        assert sum(truth.values()) == dropped(router, "FORWARD")
    TRUTH.write_text(json.dumps(truth) + "\n")


def dropped_between(router: Any, interfaces: str) -> int:
    listing = router.run(["iptables", "-L", "FORWARD", "-v", "-x", "-n"]).stdout.splitlines()
    return sum(int(line.split()[0]) for line in listing if interfaces in line)


def _timed(code: str, *args: str) -> tuple[dict[str, Any], int]:
    """A child's JSON result and its peak RSS in KiB."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"child failed: {status}")
    result: dict[str, Any] = json.loads(output)
    return result, usage.ru_maxrss


def main() -> None:
    make_captures()
    truth = json.loads(TRUTH.read_text())
    paths_runs, analyze_runs = [], []
    for _ in range(TRIALS):
        paths_runs.append(_timed(PATHS, str(FILES["a"]), str(FILES["b"])))
        analyze_runs.append([_timed(ANALYZE, str(FILES[name])) for name in FILES])
    (paths, paths_rss) = min(paths_runs, key=lambda run: run[0]["cpu_seconds"])
    analyze = min(analyze_runs, key=lambda runs: sum(run[0]["cpu_seconds"] for run in runs))
    analyze_cpu = sum(run[0]["cpu_seconds"] for run in analyze)
    packets = paths["packets"]
    rows = [
        {
            "tool": "eks-capture analyze, each node's file",
            "packets": sum(run[0]["packets"] for run in analyze),
            "cpu_seconds": round(analyze_cpu, 2),
            "seconds": round(sum(run[0]["seconds"] for run in analyze), 2),
            "packets_per_cpu_s": round(packets / analyze_cpu),
            "peak_rss_mb": round(max(run[1] for run in analyze) / 1024, 1),
        },
        {
            "tool": "path analysis of both nodes",
            "packets": packets,
            "cpu_seconds": round(paths["cpu_seconds"], 2),
            "seconds": round(paths["seconds"], 2),
            "packets_per_cpu_s": round(packets / paths["cpu_seconds"]),
            "peak_rss_mb": round(paths_rss / 1024, 1),
            "speed_vs_analyze": round(analyze_cpu / paths["cpu_seconds"], 2),
            "a_to_b_lost_between": f"{paths['lost']['a']} + {paths['in_flight']['a']} in flight at the end "
            f"(router dropped {truth['a']})",
            "b_to_a_lost_between": f"{paths['lost']['b']} + {paths['in_flight']['b']} in flight at the end "
            f"(router dropped {truth['b']})",
        },
    ]
    report = {"files": {n: str(p.relative_to(OUT.parent.parent)) for n, p in FILES.items()}, "trials": TRIALS}
    (OUT / "paths.json").write_text(json.dumps({**report, "result": paths, "rows": rows}, indent=2) + "\n")
    for row in rows:
        print(" | ".join(f"{key}: {value}" for key, value in row.items()))


if __name__ == "__main__":
    main()
