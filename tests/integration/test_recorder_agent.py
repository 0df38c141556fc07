"""The recorder roles as real processes: a ring of tcpdump files in a network namespace, windows to moto S3.

``record`` runs as root bounded to NET_RAW and SETGID, ``recorder`` as uid 65532 with no capabilities,
like the DaemonSet's two containers; the window request arrives the way the kubelet delivers it, as a
downward-API annotations file swapped atomically. Findings come from the project's analyzer reading
the objects in S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from eks_capture.pcap import analyze
from localcloud.aws import MotoServer
from localcloud.kube.downward import render_map, write_atomically
from localcloud.netns import Host, TestNetwork
from tests.fixtures.agents import CAPTURE_CAPS, UPLOAD_USER, UsageSampler, send_udp
from tests.fixtures.aws import make_bucket
from tests.fixtures.waiting import eventually, wait_for_log_line

pytestmark = pytest.mark.root

BUCKET = "recorder-test"
CLUSTER, NODE = "demo", "node-1"
CAPTURE_ID = "cap-20261125T130000Z-0a1b2c3d"
PREFIX = f"captures/{CLUSTER}/{CAPTURE_ID}/{NODE}/"
HEALTHY_PORT, FAULT_PORT = 8080, 8081
LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(64)
while True:
    connection, _ = server.accept()
    connection.sendall(b"ok")
    connection.close()
"""
CLIENT = """
import socket, sys, time
server, healthy, faulty = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fault_at, stop_at = float(sys.argv[4]), float(sys.argv[5])
while time.time() < stop_at:
    port = faulty if time.time() >= fault_at else healthy
    try:
        with socket.create_connection((server, port), timeout=1) as connection:
            connection.recv(16)
    except OSError:
        pass
    time.sleep(0.1)
"""


@dataclass
class RecorderPod:
    """The DaemonSet pod's two containers as processes, the spool they share and the annotations volume."""

    spool: Path
    annotations: Path
    logs: Path
    record: subprocess.Popen[bytes]
    recorder: subprocess.Popen[bytes]

    def log(self, role: str) -> str:
        return (self.logs / f"{role}.log").read_text()

    def ask_window(self, start: float, end: float, trigger_at: float) -> None:
        """What the trigger's annotation becomes in the pod: the kubelet's atomic rewrite of the file."""
        request = {
            "capture_id": CAPTURE_ID,
            "from": _iso(start),
            "to": _iso(end),
            "trigger_at": _iso(trigger_at),
            "prefix": PREFIX,
        }
        rendered = render_map({"eks-capture.io/window-request": json.dumps(request)})
        write_atomically(self.annotations, {"annotations": rendered})

    def stop(self) -> None:
        for process in (self.recorder, self.record):
            if process.poll() is None:
                process.terminate()
        for process in (self.recorder, self.record):
            process.wait(timeout=40)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A spool like an emptyDir (mode 0777) and an annotations volume, both reachable by uid 65532."""
    directory = Path(tempfile.mkdtemp(prefix="recorder-", dir="/tmp"))
    directory.chmod(0o755)
    (directory / "spool").mkdir(mode=0o777)
    (directory / "spool").chmod(0o777)
    (directory / "podinfo").mkdir(mode=0o755)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    return make_bucket(BUCKET)


def start_recorder(
    server: Host, workdir: Path, logs: Path, *, ring_minutes: float, budget_bytes: int, capture_filter: str
) -> RecorderPod:
    env = {**os.environ, "CLUSTER_NAME": CLUSTER, "NODE_NAME": NODE}
    spool, annotations = workdir / "spool", workdir / "podinfo"
    record_argv = [
        *CAPTURE_CAPS, sys.executable, "-m", "eks_capture_agent", "record", "--spool", str(spool),
        "--interface", server.dev, "--rotate-seconds", "2", "--rotate-megabytes", "1",
        "--budget-bytes", str(budget_bytes), "--filter", capture_filter,
    ]  # fmt: skip
    recorder_argv = [
        *UPLOAD_USER, sys.executable, "-m", "eks_capture_agent", "recorder", "--spool", str(spool),
        "--bucket", BUCKET, "--request-file", str(annotations / "annotations"),
        "--ring-minutes", str(ring_minutes), "--budget-bytes", str(budget_bytes),
        "--poll-seconds", "0.2", "--settle-seconds", "3", "--grace-seconds", "10",
    ]  # fmt: skip
    record = server.popen(
        record_argv, stdout=(logs / "record.log").open("wb"), stderr=subprocess.STDOUT, env=env
    )
    recorder = subprocess.Popen(
        recorder_argv, stdout=(logs / "recorder.log").open("wb"), stderr=subprocess.STDOUT, env=env
    )
    pod = RecorderPod(spool, annotations, logs, record, recorder)
    wait_for_log_line("capture running", lambda: pod.log("record"), record, timeout=20)
    return pod


def wait_for_manifest(pod: RecorderPod, timeout: float) -> dict[str, Any]:
    s3 = boto3.client("s3")

    def manifest() -> dict[str, Any] | None:
        try:
            return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}manifest.json")["Body"].read()))
        except s3.exceptions.NoSuchKey:
            assert pod.recorder.poll() is None, pod.log("recorder")
            return None

    return eventually(
        manifest, timeout=timeout, interval=0.3, what=lambda: f"no manifest: {pod.log('recorder')}"
    )


def pcap_objects() -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
    return {
        item["Key"]: dict(s3.head_object(Bucket=BUCKET, Key=item["Key"]))
        for item in listed
        if ".pcap" in item["Key"]
    }


def test_a_fault_before_the_alarm_is_in_the_window_and_the_findings(
    network: TestNetwork, workdir: Path, bucket: str, tmp_path: Path
) -> None:
    server, client = network["server"], network["client"]
    listener = server.popen([sys.executable, "-c", LISTENER, str(HEALTHY_PORT)])
    pod = start_recorder(
        server, workdir, tmp_path, ring_minutes=5, budget_bytes=50_000_000, capture_filter="tcp"
    )
    try:
        recorder_started = time.time()
        fault_at = recorder_started + 3
        alarm_at = fault_at + 14  # the ring then holds over 15 s before the alarm
        lookback = 40
        traffic = client.popen(
            [sys.executable, "-c", CLIENT, server.ip, str(HEALTHY_PORT), str(FAULT_PORT), str(fault_at),
             str(alarm_at + 4)]
        )  # fmt: skip
        time.sleep(max(0.0, alarm_at - time.time()))
        pod.ask_window(alarm_at - lookback, alarm_at + 3, alarm_at)
        written = wait_for_manifest(pod, timeout=40)
        traffic.wait(timeout=10)
    finally:
        pod.stop()
        listener.kill()
        listener.wait()

    assert written["status"] == "complete", written["incomplete_reasons"]
    objects = pcap_objects()
    assert len(objects) == written["totals"]["files"] >= 5
    s3 = boto3.client("s3")
    pre_trigger = {
        key: head for key, head in objects.items() if head["Metadata"].get("pre-trigger") == "true"
    }
    assert pre_trigger, "files that end before the alarm must be flagged"
    for head in pre_trigger.values():
        assert head["Metadata"].get("last-packet", "") < _iso(alarm_at)
        assert head["Metadata"]["capture-id"] == CAPTURE_ID
    refused = 0
    for key in pre_trigger:
        summary = analyze(s3.get_object(Bucket=BUCKET, Key=key)["Body"])
        refused += sum(f.count for f in summary.findings if f.kind == "tcp.refused")
    assert refused >= 50, "about 10 refused connections a second for 14 s before the alarm"
    first_packet = min(head["Metadata"]["first-packet"] for head in objects.values())
    assert first_packet < _iso(fault_at)
    window = written["window"]
    assert window["lookback_asked_seconds"] == lookback
    assert 15 < window["lookback_held_seconds"] < lookback
    assert "held only" in window["reach"], "a lookback longer than the ring's history is reported"


def test_a_long_fast_run_keeps_the_ring_in_budget_oldest_first_and_reports_a_window_it_cannot_reach(
    network: TestNetwork, workdir: Path, bucket: str, tmp_path: Path
) -> None:
    budget = 6_000_000
    pod = start_recorder(
        network["server"], workdir, tmp_path, ring_minutes=5, budget_bytes=budget, capture_filter="udp"
    )
    sampler = UsageSampler(pod.spool)
    seen: list[list[str]] = []
    try:
        sender = send_udp(network, count=80000, rate=8000)
        while sender.poll() is None:
            seen.append(sorted(entry.name for entry in os.scandir(pod.spool) if ".pcap" in entry.name))
            time.sleep(0.05)
        peak = sampler.stop()
        now = time.time()
        pod.ask_window(now - 60, now + 1, now)
        written = wait_for_manifest(pod, timeout=30)
    finally:
        pod.stop()

    assert peak <= budget, f"the spool reached {peak} bytes, budget {budget}"
    order = sorted({name for names in seen for name in names}, key=_creation_order)
    assert len(order) >= 12, "~80 MB at 1 MB a file must have rotated through the ring"
    for names in seen:
        positions = sorted(order.index(name) for name in names)
        assert positions == list(range(positions[0], positions[0] + len(positions))), "oldest files go first"
    assert written["recorder"]["evictions"]["by_reason"]["budget"] >= 5
    assert "held only" in written["window"]["reach"]
    assert written["window"]["lookback_held_seconds"] < 20


def _creation_order(name: str) -> tuple[str, int]:
    stamp, _, counter = name.partition(".pcap")
    return stamp, int(counter or 0)
