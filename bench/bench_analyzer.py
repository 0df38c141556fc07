"""Analyzer throughput and memory on a >= 1 M-packet real capture, beside tshark and capinfos.

The capture is made like the tests' (faulty traffic between network namespaces, captured by tcpdump,
here with a 128-byte snap length as the recorder uses for header captures) and cached in bench/out/.
Every tool reads the same file in the same run; peak memory is each process's own ru_maxrss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zstandard

from localcloud.netns import can_make_namespaces, test_network
from tests.fixtures.traffic import AGENTS, FAR_IP, set_up_faults, start_capture, stop_capture

OUT = Path(__file__).resolve().parent / "out"
CAPTURE = OUT / "analyzer-1m.pcap"
PACKETS = 1_000_000
SNAPLEN = 128
DROP_PROBABILITY = "0.005"
OURS = """
import json, resource, sys, time
from eks_capture.pcap import analyze_file
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
summary = analyze_file(sys.argv[1])
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "packets": summary.packets, "base_kb": base, "peak_kb": peak,
                  "retransmissions": summary.tcp.retransmissions, "partial": summary.partial}))
"""


def make_capture() -> None:
    """Record at least ``PACKETS`` packets of faulty bulk traffic with tcpdump (cached)."""
    if CAPTURE.exists():
        return
    if not can_make_namespaces():
        raise SystemExit("making the capture needs root with ip, tcpdump and ethtool")
    OUT.mkdir(exist_ok=True)
    partial = CAPTURE.with_suffix(".tmp")
    with test_network("bn", ["client", "server", "router"]) as net:
        client, server = net["client"], net["server"]
        set_up_faults(client, server, net["router"], DROP_PROBABILITY)
        serving = server.popen([sys.executable, AGENTS, "serve"], stdout=subprocess.PIPE)
        assert serving.stdout is not None
        serving.stdout.readline()
        command = f"tcpdump -i eth0 -s {SNAPLEN} -B 65536 -c {PACKETS} -w {partial}"
        capture = start_capture(client, command.split(), "listening on")
        faults = client.popen([sys.executable, AGENTS, "client", server.ip, FAR_IP])
        load = client.popen([sys.executable, AGENTS, "bulk", server.ip, "2048", "4"])
        try:
            capture.wait(timeout=300)
        finally:
            stop_capture(capture)
            for process in (faults, load, serving):
                process.kill()
                process.wait()
    partial.rename(CAPTURE)


def _timed(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"{command[0]} failed with {process.returncode}")
    return seconds, usage.ru_maxrss, output


def _row(tool: str, seconds: float, packets: int, size: int, peak_kb: int) -> dict[str, Any]:
    return {
        "tool": tool,
        "seconds": round(seconds, 2),
        "packets_per_s": round(packets / seconds),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    make_capture()
    size = CAPTURE.stat().st_size
    compressed = CAPTURE.with_suffix(".pcap.zst")
    if not compressed.exists():
        with CAPTURE.open("rb") as plain, compressed.open("wb") as packed:
            zstandard.ZstdCompressor(level=3).copy_stream(plain, packed)
    rows: list[dict[str, Any]] = []
    ours_seconds = 0.0
    packets = 0
    for label, path in (("eks-capture analyze", CAPTURE), ("eks-capture analyze (.zst)", compressed)):
        _wall, rss, output = _timed([sys.executable, "-c", OURS, str(path)])
        result = json.loads(output)
        packets = result["packets"]
        row = _row(label, result["seconds"], packets, size, rss)
        row["peak_above_start_mb"] = round((result["peak_kb"] - result["base_kb"]) / 1024, 1)
        rows.append(row)
        if path == CAPTURE:
            ours_seconds = result["seconds"]
    tshark_seconds, tshark_rss, _ = _timed(["tshark", "-q", "-z", "expert", "-r", str(CAPTURE)])
    rows.append(_row("tshark -q -z expert", tshark_seconds, packets, size, tshark_rss))
    capinfos_seconds, capinfos_rss, _ = _timed(["capinfos", str(CAPTURE)])
    rows.append(_row("capinfos", capinfos_seconds, packets, size, capinfos_rss))
    for row in rows:
        row["speed_vs_tshark"] = round(tshark_seconds / row["seconds"], 2)
    report = {
        "capture": {"path": str(CAPTURE.relative_to(OUT.parent.parent)), "packets": packets, "bytes": size},
        "rows": rows,
        "ours_vs_tshark": round(tshark_seconds / ours_seconds, 2),
        "ours_vs_capinfos": round(capinfos_seconds / ours_seconds, 2),
    }
    (OUT / "analyzer.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"capture: {packets} packets, {size / 1e6:.0f} MB ({CAPTURE.name})")
    print(f"{'tool':<28} {'seconds':>8} {'packets/s':>11} {'MB/s':>8} {'peak MB':>8} {'x tshark':>9}")
    for row in rows:
        print(
            f"{row['tool']:<28} {row['seconds']:>8} {row['packets_per_s']:>11} {row['mb_per_s']:>8} "
            f"{row['peak_rss_mb']:>8} {row['speed_vs_tshark']:>9}"
        )


if __name__ == "__main__":
    main()
