"""CLI benchmarks: ``pull`` beside plain boto3 downloads, ``pull --merge``'s merge beside mergecap.

Inputs: the analyzer benchmark's cached 1 M-packet capture (bench/out/analyzer-1m.pcap), split over
four "nodes" two ways: by packet number modulo 4 (nodes seeing traffic at the same time, the hard case
for a merge) and by consecutive quarters (``editcap -c``, rotated files that hardly overlap). Pull
downloads the four plain files from the local S3 (moto) through the index, against boto3's
``download_file`` of the same objects with the same parallelism. Every tool runs as its own process;
peak memory is that process's maximum resident set as GNU time reports it (a forked child's ru_maxrss
would start from this script's own size).

The merge runs on classic pcap files, what the capture agent's tcpdump writes (interleaved, and
quarters as tcpdump rotates them), and on pcapng quarters (``editcap``'s default); all take the numpy
merge (inputs of 32 MB or more). "eks-capture merge" is the merge on its own, numpy's import included
(the CLI loads numpy only to merge large inputs; ``numpy_import_s`` says how much of it that was);
"pull --merge, merge phase" is the same run without the import, which ``pull --merge`` does while the
files download. Both against mergecap's whole process; best of ``TRIALS`` each, alternating, each
writing a new file.
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
WORKERS = 8
SPLITS = OUT / "cli-splits"
CLUSTER = "bench"
CAPTURE_ID = "cap-20261125T031200Z-0b0e0c0a"
MERGE = """
import json, sys, time
from pathlib import Path
from eks_capture_cli.pcapng import MergeInput, all_plain
from eks_capture_cli.merge import NUMPY_FROM_BYTES, fast_merge, merge_files
inputs = [MergeInput(Path(p), f"node-{i}") for i, p in enumerate(sys.argv[2:])]
started = time.perf_counter()
if all_plain(inputs) and sum(i.path.stat().st_size for i in inputs) >= NUMPY_FROM_BYTES:
    fast_merge()  # numpy's import, as merge_files would do it
imported = time.perf_counter()
result = merge_files(inputs, Path(sys.argv[1]))
done = time.perf_counter()
print(json.dumps({"seconds": done - started, "import": imported - started, "packets": result.packets}))
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
started = time.perf_counter()
app(["pull", *sys.argv[1:]], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of one child process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            check=False,
        )
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"{command[:3]} failed with {done.returncode}")
        return seconds, int(rss.read().split()[-1]), done.stdout


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
        ours: dict[str, float] = {}
        theirs: dict[str, float] = {}
        for _trial in range(TRIALS):
            target.unlink(missing_ok=True)
            _wall, rss, output = _timed([sys.executable, "-c", MERGE, str(target), *map(str, paths)])
            run = json.loads(output)
            if run["seconds"] < ours.get("seconds", float("inf")):
                ours.update(seconds=run["seconds"], numpy_import_s=run["import"], packets=run["packets"])
            ours["rss"] = max(rss, ours.get("rss", 0))
            target.unlink(missing_ok=True)
            seconds, rss, _ = _timed(["mergecap", "-w", str(target), *map(str, paths)])
            theirs["seconds"] = min(seconds, theirs.get("seconds", float("inf")))
            theirs["rss"] = max(rss, theirs.get("rss", 0))
        # pull --merge loads numpy while the files download: its merge phase is the merge without the import.
        in_pull = {"seconds": ours["seconds"] - ours["numpy_import_s"], "rss": ours["rss"]}
        tools = (("eks-capture merge", ours), ("pull --merge, merge phase", in_pull), ("mergecap", theirs))
        for tool, figures in tools:
            rows.append(
                {
                    "benchmark": f"merge 4 nodes ({split})",
                    "tool": tool,
                    "seconds": round(figures["seconds"], 2),
                    "packets_per_s": round(ours["packets"] / figures["seconds"]),
                    "mb_per_s": round(size / figures["seconds"] / 1e6, 1),
                    "peak_rss_mb": round(figures["rss"] / 1024, 1),
                    "speed_vs_reference": round(theirs["seconds"] / figures["seconds"], 2),
                    **(
                        {"numpy_import_s": round(figures["numpy_import_s"], 2)}
                        if "numpy_import_s" in figures
                        else {}
                    ),
                }
            )
    target.unlink(missing_ok=True)
    return rows


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
    print(f"{'benchmark':<34} {'tool':<22} {'seconds':>8} {'MB/s':>8} {'peak MB':>8} {'x ref':>6}")
    for row in rows:
        print(
            f"{row['benchmark']:<34} {row['tool']:<22} {row['seconds']:>8} {row['mb_per_s']:>8} "
            f"{row['peak_rss_mb']:>8} {row['speed_vs_reference']:>6}"
        )


if __name__ == "__main__":
    main()
