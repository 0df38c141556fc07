"""Capture agent: upload MB/s and CPU per MB for each compression beside a raw copy; peak memory per role.

Two pcaps of the same synthetic TCP traffic (random payloads, as TLS looks to a compressor): full
packets, and the same packets cut to 128 bytes (header captures). Each is shipped to the local moto S3
the way the upload role ships a file (scan, compress while streaming, confirm), once per codec and
level, and once as a plain ``put_object`` of the uncompressed bytes. The roles' peak memory is each
process's own ru_maxrss (the capture role's includes tcpdump, its child).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from eks_capture_agent.compression import Codec, Compression
from eks_capture_agent.pcapscan import scan_pcap
from eks_capture_agent.s3client import StoredObject, put_file, s3_client
from localcloud.aws import start_moto_server

OUT = Path(__file__).resolve().parent / "out"
DATA_BYTES = 32 * 1_000_000
HEADER_SNAPLEN = 128
CODECS = [
    (Codec.NONE, 0),
    (Codec.GZIP, 1),
    (Codec.GZIP, 6),
    (Codec.ZSTD, 1),
    (Codec.ZSTD, 3),
    (Codec.ZSTD, 9),
]
BUCKET = "bench-agent"
IDENTITY = {"CAPTURE_ID": "cap-20261125T120000Z-be0cbe0c", "CLUSTER_NAME": "bench", "NODE_NAME": "node-1"}


def _packets(rng: random.Random) -> Any:
    """Ethernet/IPv4/TCP segments of a bulk transfer: 1448-byte data segments and the ACKs coming back."""
    seconds, micros, seq = 1_795_600_000, 0, 1_000
    eth = bytes.fromhex("0200000000010200000000020800")
    while True:
        for payload in (rng.randbytes(1448), b""):
            micros += rng.randint(5, 40)
            seconds, micros = seconds + micros // 1_000_000, micros % 1_000_000
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 52 + len(payload), seq & 0xFFFF, 0x4000, 64, 6,
                             rng.getrandbits(16), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
            tcp = struct.pack(
                "!HHIIBBHHH", 443, 50_000, seq, seq // 2, 0x80, 0x18, 502, rng.getrandbits(16), 0
            )
            options = struct.pack("!BBBBII", 1, 1, 8, 10, seconds, micros)
            seq += len(payload)
            yield seconds, micros, eth + ip + tcp + options + payload


def make_pcaps(directory: Path) -> dict[str, Path]:
    """The full-packet and the header-only capture of the same traffic, ``DATA_BYTES`` each."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    files = {}
    for name, snaplen in (("full packets", 262144), (f"headers ({HEADER_SNAPLEN} B)", HEADER_SNAPLEN)):
        path = directory / f"{name.split()[0]}.pcap"
        with path.open("wb") as out:
            out.write(header)
            for seconds, micros, frame in _packets(random.Random(7)):
                kept = frame[:snaplen]
                out.write(struct.pack("<IIII", seconds, micros, len(kept), len(frame)) + kept)
                if out.tell() >= DATA_BYTES:
                    break
        files[name] = path
    return files


def _measure(action: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def upload_rows(files: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per dataset and codec: the agent's way, then the raw copy of the same bytes."""
    client = s3_client()
    rows = []
    for dataset, path in files.items():
        megabytes = path.stat().st_size / 1_000_000
        for codec, level in CODECS:
            compression = Compression(codec, level)

            def ship(compression: Compression = compression, path: Path = path) -> StoredObject:
                scan_pcap(path)
                return put_file(
                    client, BUCKET, f"bench/{path.name}{compression.suffix}", path, compression, {}
                )

            wall, cpu, stored = _measure(ship)
            rows.append({
                "data": dataset, "upload": f"agent {codec.value}" + (f"-{level}" if level else ""),
                "mb_per_s": round(megabytes / wall, 1), "cpu_s_per_mb": round(cpu / megabytes, 4),
                "stored_pct": round(100 * stored.stored_bytes / path.stat().st_size, 1),
            })  # fmt: skip

        def raw(path: Path = path) -> None:
            with path.open("rb") as body:
                client.put_object(Bucket=BUCKET, Key=f"bench/raw-{path.name}", Body=body)

        wall, cpu, _ = _measure(raw)
        rows.append({"data": dataset, "upload": "raw put_object (reference)",
                     "mb_per_s": round(megabytes / wall, 1), "cpu_s_per_mb": round(cpu / megabytes, 4),
                     "stored_pct": 100.0})  # fmt: skip
    return rows


def _high_water_mb(pid: int) -> float:
    """VmHWM of one live process: its own peak RSS since exec (ru_maxrss would include the forked parent)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _run_role(
    argv: list[str], env: dict[str, str], stop_after: float | None = None
) -> tuple[int, float, float, float]:
    """Exit code, wall seconds, and peak RSS (MB) of the role's process and of its largest child."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own = child = 0.0
    signalled = False
    while process.poll() is None:
        own = max(own, _high_water_mb(process.pid))
        child = max([child, *(_high_water_mb(pid) for pid in _children(process.pid))])
        if stop_after is not None and not signalled and time.perf_counter() - started > stop_after:
            process.send_signal(signal.SIGTERM)
            signalled = True
        time.sleep(0.02)
    return process.returncode, time.perf_counter() - started, own, child


def role_rows(files: dict[str, Path], env: dict[str, str]) -> list[dict[str, Any]]:
    """Peak memory of the upload role shipping both datasets, and of the capture role at full speed on lo."""
    rows = []
    with tempfile.TemporaryDirectory() as spool:
        total = 0
        for index, path in enumerate(files.values()):
            shutil.copy(path, Path(spool) / f"20261125T1200{index:02d}Z.pcap")
            total += path.stat().st_size
        Path(spool, "capture-done.json").write_text(json.dumps({"status": "completed"}))
        argv = [sys.executable, "-m", "eks_capture_agent", "upload", "--spool", spool, "--bucket", BUCKET,
                "--prefix", "roles/", "--poll-seconds", "0.05"]  # fmt: skip
        code, wall, peak, _ = _run_role(argv, env)
        rows.append({"role": "upload (default compression)", "exit": code, "peak_rss_mb": round(peak, 1),
                     "note": f"{total / 1e6:.0f} MB of pcap in {wall:.1f} s end to end"})  # fmt: skip
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        rows.append({"role": "capture", "exit": "", "peak_rss_mb": "", "note": "needs root and tcpdump"})
        return rows
    with tempfile.TemporaryDirectory() as spool:
        argv = [sys.executable, "-m", "eks_capture_agent", "capture", "--spool", spool, "--interface", "lo",
                "--duration", "60", "--rotate-seconds", "1", "--rotate-megabytes", "50",
                "--filter", "udp port 9"]  # fmt: skip
        sender = subprocess.Popen([sys.executable, "-c", _FLOOD])
        code, wall, peak, tcpdump_peak = _run_role(argv, env, stop_after=5.0)
        sender.kill()
        sender.wait()
        marker = json.loads(Path(spool, "capture-done.json").read_text())
        captured = marker["tcpdump"]["counters"]["captured"]
        rows.append({"role": "capture (agent)", "exit": code, "peak_rss_mb": round(peak, 1),
                     "note": f"{captured} packets in {wall:.1f} s, stopped by SIGTERM"})  # fmt: skip
        rows.append({"role": "capture (its tcpdump, -B 8192)", "exit": code,
                     "peak_rss_mb": round(tcpdump_peak, 1),
                     "note": "the kernel ring is mapped into tcpdump"})  # fmt: skip
    return rows


_FLOOD = f"""
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    sock.sendto(b"x" * 1400, ("127.0.0.1", {socket.getservbyname("discard", "udp")}))
"""


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def _create_bucket() -> None:
    s3 = boto3.client("s3")
    region: Any = s3.meta.region_name
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})


def main() -> int:
    OUT.mkdir(exist_ok=True)
    server = start_moto_server()
    env = {**os.environ, **server.env(), **IDENTITY}
    os.environ.update(server.env())
    try:
        _create_bucket()
        with tempfile.TemporaryDirectory() as scratch:
            files = make_pcaps(Path(scratch))
            uploads = upload_rows(files)
            server.reset()
            _create_bucket()
            roles = role_rows(files, env)
    finally:
        server.stop()
    _print("Upload of one rotated file to local S3 (moto), per compression", uploads)
    _print("Peak memory per role", roles)
    document = {"data_bytes_per_file": DATA_BYTES, "rows": uploads, "roles": roles}
    (OUT / "agent.json").write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
