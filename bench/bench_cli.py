"""CLI benchmarks: ``pull`` beside plain boto3 downloads, ``pull --merge``'s merge beside mergecap.

Inputs: the analyzer benchmark's cached 1 M-packet capture (bench/out/analyzer-1m.pcap), split over
four "nodes" two ways: by packet number modulo 4 (nodes seeing traffic at the same time, the hard case
for a merge) and by consecutive quarters (``editcap -c``, rotated files that hardly overlap). Pull
downloads the four plain files from the local S3 (moto) through the index, against boto3's
``download_file`` of the same objects with the same parallelism. Every tool runs as its own process;
peak memory is that process's maximum resident set as GNU time reports it (a forked child's ru_maxrss
would start from this script's own size).

The merge runs on classic pcap files, what the capture agent's tcpdump writes (interleaved, and
quarters as tcpdump rotates them), and on pcapng quarters (``editcap``'s default); all plain, so all
take the C merge (``merge_plain``). "eks-capture merge" is the installed console script's whole
process, as a user runs it: Python's and typer's start-up included. "pull --merge, merge phase" is
``merge_files`` alone, timed inside a process that has imported it. Both against mergecap's whole process,
in wall seconds and in CPU seconds (user + system; the machine is shared, so the CPU ratio is the
steadier); best of ``MERGE_TRIALS`` each, alternating, each writing a new file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.bench_analyzer import CAPTURE, OUT, make_capture
from localcloud.aws import start_moto_server

NODES = 4
TRIALS = 3  # best of: the local S3 shares this machine's two cores with the client
MERGE_TRIALS = 5
COMMAND = Path(sys.executable).parent / "eks-capture"  # the console script, as installed
WORKERS = 8
SPLITS = OUT / "cli-splits"
CLUSTER = "bench"
CAPTURE_ID = "cap-20261125T031200Z-0b0e0c0a"
MERGE = """
import json, sys, time
from pathlib import Path
from eks_capture_cli.pcapng import MergeInput
from eks_capture_cli.merge import merge_files
inputs = [MergeInput(Path(p), f"node-{i}") for i, p in enumerate(sys.argv[2:])]
started, cpu = time.perf_counter(), time.process_time()
result = merge_files(inputs, Path(sys.argv[1]))
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "packets": result.packets}))
"""
BOTO3 = f"""
import boto3, json, sys, time
from concurrent.futures import ThreadPoolExecutor
from botocore.config import Config
bucket, out, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
started = time.perf_counter()
s3 = boto3.client("s3", config=Config(max_pool_connections=16))
with ThreadPoolExecutor(max_workers={WORKERS}) as pool:
    list(pool.map(lambda k: s3.download_file(bucket, k, f"{{out}}/{{k.rsplit('/', 1)[-1]}}"), keys))
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""
PULL = """
import json, sys, time
from eks_capture_cli import app
import eks_capture_cli.pull  # loaded on demand by the command; before the timer, as boto3 is for boto3's
started = time.perf_counter()
app(["pull", *sys.argv[1:]], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of one child process."""
    seconds, _cpu, rss, output = _timed_cpu(command, env)
    return seconds, rss, output


def _timed_cpu(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (KiB) and stdout of one child process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as usage:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", usage.name, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"{command[:3]} failed with {done.returncode}")
        rss, user, system = usage.read().split()[-3:]
        return seconds, float(user) + float(system), int(rss), done.stdout


def splits() -> dict[str, list[Path]]:
    """The capture over four nodes, interleaved and in quarters (cached)."""
    SPLITS.mkdir(parents=True, exist_ok=True)
    interleaved = [SPLITS / f"interleaved-{i}.pcap" for i in range(NODES)]
    for i, path in enumerate(interleaved):
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            subprocess.run(
                [
                    "tshark",
                    "-r",
                    str(CAPTURE),
                    "-Y",
                    f"frame.number % {NODES} == {i}",
                    "-F",
                    "pcap",
                    "-w",
                    str(tmp),
                ],
                check=True,
                capture_output=True,
            )
            tmp.rename(path)
    quarters = sorted(SPLITS.glob("quarter_*.pcap"))
    if len(quarters) != NODES:
        packets = 1_000_000 // NODES
        subprocess.run(
            ["editcap", "-c", str(packets), str(CAPTURE), str(SPLITS / "quarter.pcap")],
            check=True,
            capture_output=True,
        )
        quarters = sorted(SPLITS.glob("quarter_*.pcap"))
    rotated = sorted(SPLITS.glob("rotated_*.pcap"))
    if len(rotated) != NODES:
        packets = 1_000_000 // NODES
        subprocess.run(
            ["editcap", "-F", "pcap", "-c", str(packets), str(CAPTURE), str(SPLITS / "rotated.pcap")],
            check=True,
            capture_output=True,
        )
        rotated = sorted(SPLITS.glob("rotated_*.pcap"))
    return {"interleaved": interleaved, "quarters": quarters, "rotated": rotated}


def merge_rows(inputs: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """Our merge and mergecap on the same four files, each split."""
    rows: list[dict[str, Any]] = []
    target = SPLITS / "merged.pcapng"
    splits = {
        "interleaved, pcap": inputs["interleaved"],
        "quarters, pcap": inputs["rotated"],
        "quarters, pcapng": inputs["quarters"],
    }
    for split, paths in splits.items():
        size = sum(p.stat().st_size for p in paths)
        files = [str(p) for p in paths]
        commands = {
            "eks-capture merge": [str(COMMAND), "merge", *files, "-o", str(target)],
            "pull --merge, merge phase": [sys.executable, "-c", MERGE, str(target), *files],
            "mergecap": ["mergecap", "-w", str(target), *files],
        }
        best: dict[str, dict[str, float]] = {tool: {} for tool in commands}
        for _trial in range(MERGE_TRIALS):
            for tool, command in commands.items():
                target.unlink(missing_ok=True)
                wall, cpu, rss, output = _timed_cpu(command)
                if tool == "pull --merge, merge phase":  # the merge alone, measured inside the process
                    wall, cpu = (json.loads(output)[key] for key in ("seconds", "cpu"))
                figures = best[tool]
                figures["seconds"] = min(wall, figures.get("seconds", wall))
                figures["cpu"] = min(cpu, figures.get("cpu", cpu))
                figures["rss"] = max(rss, figures.get("rss", rss))
        theirs = best["mergecap"]
        packets = _packets(target)
        for tool, figures in best.items():
            rows.append(
                {
                    "benchmark": f"merge 4 nodes ({split})",
                    "tool": tool,
                    "seconds": round(figures["seconds"], 2),
                    "cpu_seconds": round(figures["cpu"], 2),
                    "packets_per_s": round(packets / figures["seconds"]),
                    "mb_per_s": round(size / figures["seconds"] / 1e6, 1),
                    "peak_rss_mb": round(figures["rss"] / 1024, 1),
                    "speed_vs_reference": round(theirs["seconds"] / figures["seconds"], 2),
                    "cpu_vs_reference": round(theirs["cpu"] / figures["cpu"], 2),
                }
            )
    target.unlink(missing_ok=True)
    return rows


def _packets(path: Path) -> int:
    """How many packets capinfos counts in ``path``."""
    done = subprocess.run(
        ["capinfos", "-M", "-c", "-T", str(path)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def pull_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """``eks-capture pull`` against boto3 download_file, same objects from the local S3."""
    server = start_moto_server()
    try:
        env = {**os.environ, **server.env()}
        os.environ.update(server.env())
        s3: Any = boto3.client("s3")
        dynamodb = boto3.client("dynamodb")
        bucket, table = "bench-captures", "bench-index"
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
        _create_table(dynamodb, table)
        keys = _index(s3, bucket, table, paths)
        size = sum(p.stat().st_size for p in paths)
        rows = []
        work = SPLITS / "pulled"
        timings: dict[str, tuple[float, float, int]] = {}
        pull = ["--out", str(work), "--workers", str(WORKERS), "--table", table, "--bucket", bucket]
        commands = {
            "boto3 download_file": [sys.executable, "-c", BOTO3, bucket, str(work), *keys],
            "eks-capture pull": [sys.executable, "-c", PULL, CAPTURE_ID, *pull],
        }
        for _trial in range(TRIALS):
            for tool, command in commands.items():
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
                wall, rss, output = _timed(command, env)
                seconds = json.loads(output.splitlines()[-1])["seconds"]
                best = timings.get(tool, (wall, seconds, rss))
                timings[tool] = (min(wall, best[0]), min(seconds, best[1]), max(rss, best[2]))
        shutil.rmtree(work, ignore_errors=True)
        for phase, column in (("process", 0), ("download", 1)):
            reference = timings["boto3 download_file"][column]
            for tool, figures in timings.items():
                seconds = figures[column]
                rows.append(
                    {
                        "benchmark": f"pull {len(paths)} files, {size / 1e6:.0f} MB ({phase})",
                        "tool": tool,
                        "seconds": round(seconds, 2),
                        "mb_per_s": round(size / seconds / 1e6, 1),
                        "peak_rss_mb": round(figures[2] / 1024, 1),
                        "speed_vs_reference": round(reference / seconds, 2),
                    }
                )
        return rows
    finally:
        server.stop()


def _create_table(client: Any, table: str) -> None:
    keys = ("pk", "sk", "gsi1pk", "gsi1sk")
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def _index(s3: Any, bucket: str, table: str, paths: list[Path]) -> list[str]:
    from eks_capture.store.catalog import CaptureStore
    from eks_capture.store.files import FileRecord
    from eks_capture.store.sessions import CaptureSession, Trigger

    store = CaptureStore(table)
    now = datetime(2026, 11, 25, 3, 12, tzinfo=UTC)
    store.create_session(
        CaptureSession(
            capture_id=CAPTURE_ID,
            cluster=CLUSTER,
            trigger=Trigger(kind="manual", reason="bench", event_id="bench"),
            created_at=now,
            expires_at=now + timedelta(minutes=5),
            duration_seconds=60,
        )
    )
    keys = []
    for i, path in enumerate(paths):
        key = f"captures/{CLUSTER}/{CAPTURE_ID}/node-{i}/20261125T031200Z-00001.pcap"
        s3.upload_file(str(path), bucket, key)
        store.record_file(
            FileRecord(
                capture_id=CAPTURE_ID,
                cluster=CLUSTER,
                node=f"node-{i}",
                s3_key=key,
                size=path.stat().st_size,
                packets=0,
                bytes=0,
                first_ts=now,
                last_ts=now,
            )
        )
        keys.append(key)
    return keys


def main() -> None:
    make_capture()
    inputs = splits()
    rows = [*pull_rows(inputs["quarters"]), *merge_rows(inputs)]
    (OUT / "cli.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(
        f"{'benchmark':<34} {'tool':<26} {'seconds':>8} {'cpu s':>6} {'MB/s':>8} {'peak MB':>8} {'x ref':>6}"
    )
    for row in rows:
        print(
            f"{row['benchmark']:<34} {row['tool']:<26} {row['seconds']:>8} {row.get('cpu_seconds', ''):>6} "
            f"{row['mb_per_s']:>8} {row['peak_rss_mb']:>8} {row['speed_vs_reference']:>6}"
        )


if __name__ == "__main__":
    main()
