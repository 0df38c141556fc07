"""Recorder benchmark (root): what the ring costs a node, and how soon an alarm's packets reach S3.

1. The ``record`` and ``recorder`` roles in a network namespace, headers only (128 B), a 256 MiB ring:
   CPU (% of one core) and peak memory of tcpdump and both agents, idle and at ~50 MB/s of UDP.
2. In the local cloud (``shop-prod``, two nodes that are this machine, one with a recorder): seconds from
   the alarm event to the first object in S3 on the recorder node and on the Job node. The local
   kubelet rewrites downward-API files within ``downward_refresh_seconds`` (1 s); a real kubelet takes up
   to its sync period plus cache TTL (~60-90 s), which is added to the recorder's time on EKS.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from bench.stands import cpu_seconds, provision_functions
from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.kube import eks
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import REGION, MotoServer, start_moto_server
from localcloud.cloud import create_eks_cluster
from localcloud.clusters import load_cluster_spec, populate
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.kube.resources import PODS
from localcloud.netns import test_network
from localcloud.template import PROJECT_ROOT

OUT = Path(__file__).resolve().parent / "out"
PHASE_SECONDS = 10.0
TARGET_BYTES_PER_SECOND = 50_000_000
DATAGRAM_BYTES = 1400
SENDERS = 4
PORT = 9999
SENDER = """
import socket, sys, time
destination, port, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
seconds, size = float(sys.argv[4]), int(sys.argv[5])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * size
start = time.monotonic()
sent = 0
while time.monotonic() - start < seconds:
    for _ in range(100):
        sock.sendto(payload, (destination, port))
    sent += 100
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(sent)
"""
CLUSTER = "shop-prod"
NODE_RECORDER = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_JOB = "ip-192-168-40-7.us-west-2.compute.internal"
LOOPBACK_PORT = 18580


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _processes(record: subprocess.Popen[bytes], recorder: subprocess.Popen[bytes]) -> dict[str, int]:
    tcpdump = next(iter(_children(record.pid)), None)
    if tcpdump is None:
        raise RuntimeError("tcpdump is not running under the record role")
    return {"tcpdump": tcpdump, "record agent": record.pid, "recorder agent": recorder.pid}


def agent_resources() -> list[dict[str, Any]]:
    """CPU and peak memory of the recorder's processes, idle and under load."""
    rows: list[dict[str, Any]] = []
    moto = start_moto_server()
    os.environ.update(moto.env())
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench-recorder", CreateBucketConfiguration={"LocationConstraint": REGION})  # type: ignore[typeddict-item]
    workdir = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    spool, podinfo = workdir / "spool", workdir / "podinfo"
    spool.mkdir()
    podinfo.mkdir()
    env = {**os.environ, "CLUSTER_NAME": "bench", "NODE_NAME": "node-1"}
    try:
        with test_network("brec", ["client", "server"]) as network:
            server = network["server"]
            record = server.popen(
                [sys.executable, "-m", "eks_capture_agent", "record", "--spool", str(spool), "--interface",
                 server.dev, "--filter", f"udp port {PORT}", "--rotate-megabytes", "16"],
                stdout=(workdir / "record.log").open("wb"), stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            recorder = subprocess.Popen(
                [sys.executable, "-m", "eks_capture_agent", "recorder", "--spool", str(spool), "--bucket",
                 "bench-recorder", "--request-file", str(podinfo / "annotations"), "--budget-bytes",
                 str(256 << 20)],
                stdout=(workdir / "recorder.log").open("wb"), stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while "capture running" not in (workdir / "record.log").read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError((workdir / "record.log").read_text())
                time.sleep(0.1)
            processes = _processes(record, recorder)
            for phase, rate in (("idle", 0.0), ("load", TARGET_BYTES_PER_SECOND)):
                before = {name: cpu_seconds(pid) for name, pid in processes.items()}
                started = time.monotonic()
                senders = []
                if rate:
                    per_sender = rate / DATAGRAM_BYTES / SENDERS
                    argv = [sys.executable, "-c", SENDER, server.ip, str(PORT), str(per_sender),
                            str(PHASE_SECONDS), str(DATAGRAM_BYTES)]  # fmt: skip
                    senders = [network["client"].popen(argv, stdout=subprocess.PIPE) for _ in range(SENDERS)]
                    sent = sum(int((s.communicate()[0] or b"0").decode()) for s in senders)
                else:
                    time.sleep(PHASE_SECONDS)
                    sent = 0
                elapsed = time.monotonic() - started
                for name, pid in processes.items():
                    rows.append(
                        {
                            "phase": phase,
                            "offered_mb_per_s": round(sent * DATAGRAM_BYTES / elapsed / 1e6, 1),
                            "process": name,
                            "cpu_percent": round(100 * (cpu_seconds(pid) - before[name]) / elapsed, 1),
                            "peak_rss_mib": round(_peak_rss_mib(pid), 1),
                        }
                    )
            recorder.terminate()
            record.terminate()
            recorder.wait(timeout=40)
            record.wait(timeout=40)
            counters = [
                line for line in (workdir / "record.log").read_text().splitlines() if "packets" in line
            ]
            print("\n".join(json.loads(line).get("tcpdump_stderr", "") for line in counters[-4:]))
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
        moto.stop()
    return rows


def _local_cloud(moto: MotoServer) -> tuple[KubeEmulator, Deps]:
    kube = start_kube_emulator(CLUSTER, moto.endpoint_url, REGION, create_eks_cluster(CLUSTER))
    kube.local_env.update(moto.env())
    env = provision_functions(CLUSTER, kube.env(), {"ROTATE_SECONDS": "10", "UPLOAD_GRACE_SECONDS": "30"})
    namespace = str(env["CAPTURE_NAMESPACE"])
    account = (namespace, str(env["CAPTURE_SERVICE_ACCOUNT"]))
    populate(kube, load_cluster_spec(CLUSTER), [namespace], service_accounts=[account])
    kube.kubelet.local_nodes.update({NODE_RECORDER, NODE_JOB})
    settings = Settings.from_env()
    return kube, Deps(settings=settings, store=CaptureStore(settings.capture_table))


def _loopback_traffic(stop: threading.Event) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while not stop.wait(0.01):
        sock.sendto(b"x" * 200, ("127.0.0.1", LOOPBACK_PORT))


def _first_pcap_seconds(bucket: str, prefixes: dict[str, str], started: float) -> dict[str, float]:
    s3 = boto3.client("s3")
    found: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while len(found) < len(prefixes) and time.monotonic() < deadline:
        for node, prefix in prefixes.items():
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            if node not in found and any(".pcap" in item["Key"] for item in listed):
                found[node] = round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return found


def alarm_to_first_object() -> dict[str, Any]:
    """Seconds from the alarm event to the first object in S3, recorder node beside Job node."""
    moto = start_moto_server()
    os.environ.update(moto.env())
    kube, deps = _local_cloud(moto)
    stop = threading.Event()
    traffic = threading.Thread(target=_loopback_traffic, args=(stop,), daemon=True)
    try:
        start = json.loads((PROJECT_ROOT / "events" / "start-recorder.json").read_text())
        start["detail"].update(
            node_selector={"matchLabels": {"kubernetes.io/hostname": NODE_RECORDER}},
            filter=f"udp port {LOOPBACK_PORT}",
            ring_minutes=5,
        )
        trigger.handle(start, deps)
        traffic.start()
        deadline = time.monotonic() + 30
        while not any(
            p["spec"].get("nodeName") == NODE_RECORDER and (p.get("status") or {}).get("phase") == "Running"
            for p in kube.objects(PODS, deps.settings.capture_namespace)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the recorder pod never ran")
            time.sleep(0.1)
        time.sleep(25)  # the ring holds a little history
        alarm = copy.deepcopy(json.loads((PROJECT_ROOT / "events" / "alarm-metric-math.json").read_text()))
        now = datetime.now(UTC)
        alarm["id"] = str(uuid.uuid4())
        alarm["detail"]["state"]["timestamp"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        alarm["detail"]["alarmTags"] = {"eks-capture:duration": "20", "eks-capture:cluster": CLUSTER}
        alarm["detail"]["alarmTagsStatus"] = "SUCCESS"
        started = time.monotonic()
        outcome = trigger.handle(alarm, deps)
        handled = round(time.monotonic() - started, 2)
        prefixes = {
            node: f"captures/{CLUSTER}/{outcome.capture_id}/{node}/" for node in (NODE_RECORDER, NODE_JOB)
        }
        firsts = _first_pcap_seconds(deps.settings.capture_bucket, prefixes, started)
        return {
            "trigger_seconds": handled,
            "nodes": outcome.nodes,
            "recorder_node_first_object_seconds": firsts.get(NODE_RECORDER),
            "job_node_first_object_seconds": firsts.get(NODE_JOB),
            "job_rotate_seconds": deps.settings.rotate_seconds,
            "downward_refresh_seconds": kube.kubelet.downward_refresh_seconds,
        }
    finally:
        stop.set()
        kube.stop()
        moto.stop()
        eks.clear_caches()


def main() -> None:
    if os.geteuid() != 0:
        print("bench_recorder captures real packets in network namespaces: run it as root", file=sys.stderr)
        raise SystemExit(2)
    rows = agent_resources()
    print(f"{'phase':6} {'offered MB/s':>12} {'process':16} {'CPU %':>7} {'peak MiB':>9}")
    for row in rows:
        print(
            f"{row['phase']:6} {row['offered_mb_per_s']:>12} {row['process']:16} "
            f"{row['cpu_percent']:>7} {row['peak_rss_mib']:>9}"
        )
    latency = alarm_to_first_object()
    print()
    print(f"alarm event -> trigger done: {latency['trigger_seconds']} s ({latency['nodes']})")
    print(
        f"alarm event -> first object in S3: recorder node {latency['recorder_node_first_object_seconds']} s "
        f"(local kubelet refresh {latency['downward_refresh_seconds']} s; a real kubelet: up to ~60-90 s), "
        f"Job node {latency['job_node_first_object_seconds']} s (first rotation after "
        f"{latency['job_rotate_seconds']} s; on EKS add pod scheduling and image pull)"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "recorder.json").write_text(
        json.dumps({"resources": rows, "alarm_to_s3": latency}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
