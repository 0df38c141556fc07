"""Analyzer throughput and memory on three real captures, beside tshark and capinfos in the same run.

Each capture is real traffic between network namespaces recorded by tcpdump on a veth pair, cached in
bench/out/ (made once, never committed):
- TCP bulk: >= 1 M packets of faulty bulk uploads, 128-byte snap length (the recorder's header captures);
- DNS-heavy: 2.4 M packets, three quarters DNS queries and answers from resolvers that change source port
  every 100 queries (a few NXDOMAIN, SERVFAIL, unanswered), the rest TCP uploads; 256-byte snap length;
- mixed: 1.2 M packets, about a third DNS, the rest faulty bulk uploads and the fault agents' handshakes,
  resets, ICMP; 256-byte snap length.
Every tool reads the same file; the analyzer and tshark alternate, best of ``TRIALS`` each, so the ratio
is measured side by side on a shared machine; each ratio is given on wall time and on CPU time (user +
system; the analyzer's is its analysis, like its wall time, tshark's its whole process). Peak memory is
each process's own ru_maxrss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from localcloud.netns import can_make_namespaces, test_network
from tests.fixtures.traffic import AGENTS, FAR_IP, set_up_faults, start_capture, stop_capture

OUT = Path(__file__).resolve().parent / "out"
CAPTURE = OUT / "analyzer-1m.pcap"
TRIALS = 3
OURS = """
import json, resource, sys, time
from eks_capture.pcap import analyze_file
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu = time.perf_counter(), time.process_time()
summary = analyze_file(sys.argv[1])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "cpu": cpu, "packets": summary.packets, "base_kb": base,
                  "peak_kb": peak,
                  "dns_queries": summary.dns.queries, "dns_responses": summary.dns.responses,
                  "retransmissions": summary.tcp.retransmissions, "partial": summary.partial}))
"""


@dataclass(frozen=True)
class Workload:
    """How one benchmark capture is made: its traffic, size and snap length."""

    name: str
    path: Path
    packets: int
    snaplen: int
    drop_probability: str
    #: fault_agents.py commands run on the client (SERVER and FAR stand for the addresses)
    commands: tuple[tuple[str, ...], ...]


TCP_BULK = Workload(
    "TCP bulk",
    CAPTURE,
    1_000_000,
    128,
    "0.005",
    (("client", "SERVER", "FAR"), ("bulk", "SERVER", "2048", "4")),
)
# 80 KiB of upload (~57 segments and their ACKs) per 100 queries (~200 packets): three quarters DNS.
DNS_HEAVY = Workload(
    "DNS-heavy",
    OUT / "analyzer-dns-2m.pcap",
    2_400_000,
    256,
    "0",
    (("dns", "SERVER", "2000000", "4", "81920"),),
)
# 512 KiB per 100 queries, on top of the faults and one bulk upload: about a third DNS.
MIXED = Workload(
    "mixed",
    OUT / "analyzer-mixed-1m.pcap",
    1_200_000,
    256,
    "0.005",
    (("client", "SERVER", "FAR"), ("bulk", "SERVER", "64", "1"), ("dns", "SERVER", "2000000", "2", "524288")),
)
WORKLOADS = (TCP_BULK, DNS_HEAVY, MIXED)


def make_capture(workload: Workload = TCP_BULK) -> None:
    """Record ``workload.packets`` packets of the workload's traffic with tcpdump (cached)."""
    if workload.path.exists():
        return
    if not can_make_namespaces():
        raise SystemExit("making the capture needs root with ip, tcpdump and ethtool")
    OUT.mkdir(exist_ok=True)
    partial = workload.path.with_suffix(".tmp")
    with test_network("bn", ["client", "server", "router"]) as net:
        client, server = net["client"], net["server"]
        set_up_faults(client, server, net["router"], workload.drop_probability)
        serving = server.popen([sys.executable, AGENTS, "serve"], stdout=subprocess.PIPE)
        assert serving.stdout is not None
        serving.stdout.readline()
        command = f"tcpdump -i eth0 -s {workload.snaplen} -B 65536 -c {workload.packets} -w {partial}"
        capture = start_capture(client, command.split(), "listening on")
        addresses = {"SERVER": server.ip, "FAR": FAR_IP}
        loads = [
            client.popen([sys.executable, AGENTS, *(addresses.get(arg, arg) for arg in args)])
            for args in workload.commands
        ]
        try:
            capture.wait(timeout=600)
        finally:
            stop_capture(capture)
            for process in (*loads, serving):
                process.kill()
                process.wait()
    partial.rename(workload.path)


def _timed(command: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (KiB) and stdout of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"{command[0]} failed with {process.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, output


def _row(tool: str, seconds: float, cpu: float, packets: int, size: int, peak_kb: int) -> dict[str, Any]:
    return {
        "tool": tool,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "packets_per_s": round(packets / seconds),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def _ours(path: Path, size: int, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    _wall, _cpu, rss, output = _timed([sys.executable, "-c", OURS, str(path)])
    result = json.loads(output)
    row = _row(label, result["seconds"], result["cpu"], result["packets"], size, rss)
    row["peak_above_start_mb"] = round((result["peak_kb"] - result["base_kb"]) / 1024, 1)
    return row, result


def _best(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest trial, with the least CPU any trial used (the machine is shared: both are noisy)."""
    return {
        **min(rows, key=lambda row: row["seconds"]),
        "cpu_seconds": min(row["cpu_seconds"] for row in rows),
    }


def measure(workload: Workload) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The analyzer, its .zst input, tshark and capinfos on one capture, alternating, best of ``TRIALS``."""
    make_capture(workload)
    path = workload.path
    size = path.stat().st_size
    compressed = path.with_suffix(".pcap.zst")
    if not compressed.exists():
        with path.open("rb") as plain, compressed.open("wb") as packed:
            zstandard.ZstdCompressor(level=3).copy_stream(plain, packed)
    trials: dict[str, list[dict[str, Any]]] = {}
    result: dict[str, Any] = {}
    for _ in range(TRIALS):
        for label, source in (("eks-capture analyze", path), ("eks-capture analyze (.zst)", compressed)):
            row, result = _ours(source, size, label)
            trials.setdefault(label, []).append(row)
        packets = result["packets"]
        for tool, command in (
            ("tshark -q -z expert", ["tshark", "-q", "-z", "expert", "-r", str(path)]),
            ("capinfos", ["capinfos", str(path)]),
        ):
            seconds, cpu, rss, _ = _timed(command)
            trials.setdefault(tool, []).append(_row(tool, seconds, cpu, packets, size, rss))
    rows = [_best(runs) for runs in trials.values()]
    tshark = rows[2]
    for row in rows:
        row["speed_vs_tshark"] = round(tshark["seconds"] / row["seconds"], 2)
        row["cpu_vs_tshark"] = round(tshark["cpu_seconds"] / row["cpu_seconds"], 2)
    rows = [{"capture": workload.name, **row} for row in rows]
    dns_share = (result["dns_queries"] + result["dns_responses"]) / max(result["packets"], 1)
    capture = {
        "path": str(path.relative_to(OUT.parent.parent)),
        "packets": result["packets"],
        "bytes": size,
        "snaplen": workload.snaplen,
        "dns_share": round(dns_share, 3),
        "ours_vs_tshark": rows[0]["speed_vs_tshark"],
        "ours_vs_tshark_cpu": rows[0]["cpu_vs_tshark"],
    }
    return rows, capture


def main() -> None:
    selected = [w for w in WORKLOADS if not sys.argv[1:] or w.name in sys.argv[1:]]
    rows: list[dict[str, Any]] = []
    captures: dict[str, Any] = {}
    for workload in selected:
        workload_rows, captures[workload.name] = measure(workload)
        rows += workload_rows
    report = {"captures": captures, "trials": TRIALS, "rows": rows}
    (OUT / "analyzer.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, capture in captures.items():
        megabytes = capture["bytes"] / 1e6
        print(f"{name}: {capture['packets']} packets, {megabytes:.0f} MB, DNS {capture['dns_share']:.0%}")
    columns = ("seconds", "packets/s", "MB/s", "peak MB", "x tshark")
    print(f"{'capture':<10} {'tool':<28} " + " ".join(f"{column:>10}" for column in columns))
    for row in rows:
        print(
            f"{row['capture']:<10} {row['tool']:<28} {row['seconds']:>10} {row['packets_per_s']:>10} "
            f"{row['mb_per_s']:>10} {row['peak_rss_mb']:>10} {row['speed_vs_tshark']:>10}"
        )


if __name__ == "__main__":
    main()
