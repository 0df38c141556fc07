"""The image built from capture-image/Dockerfile runs the capture Job's two containers as the Job says.

The Job comes from the trigger's manifest builder; podman runs its ``capture`` and ``upload`` containers
with the Job's command, args, env, shared spool and security context (root with only NET_RAW and SETGID,
uid 65532 with none, read-only root filesystems, no privilege escalation) on the host network, uploading
to moto over HTTP. Packets in S3 are counted by tshark.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.manifests.job import (
    CAPTURE_CONTAINER,
    UPLOAD_CONTAINER,
    CaptureSpec,
    capture_job,
    s3_prefix,
)
from eks_capture.kube.nodes import NodeInfo
from eks_capture.settings import Settings
from localcloud.aws import MotoServer, free_port
from tests.fixtures.aws import make_bucket
from tests.fixtures.image import PODMAN, ULIMITS, empty_dir, podman_run_argv, remove_container
from tests.fixtures.waiting import wait_for_log_line

pytestmark = [pytest.mark.root, pytest.mark.slow]

BUCKET = "captures-image-test"
CLUSTER = "shop-prod"
NODE = NodeInfo("ip-10-0-0-1.us-west-2.compute.internal", "i-0a1b2c3d4e5f60718", "us-west-2a")
DATAGRAMS = 3000


def job_pod(image: str, port: int, duration: int = 5) -> tuple[dict[str, Any], str]:
    """The capture Job's pod spec for NODE, capturing ``udp port <port>``, and its S3 prefix."""
    settings = Settings.from_env(
        {
            "CAPTURE_BUCKET": BUCKET,
            "CAPTURE_TABLE": "eks-capture-index",
            "CAPTURE_IMAGE": image,
            "AWS_REGION": "us-west-2",
            "ROTATE_SECONDS": "5",
            "ROTATE_MEGABYTES": "1",
            "UPLOAD_GRACE_SECONDS": "10",
        }
    )
    started = datetime.now(UTC)
    capture_id = capture_id_for_event(uuid.uuid4().hex, started)
    options = CaptureOptions(duration_seconds=duration, snaplen=2048, filter=f"udp port {port}")
    spec = CaptureSpec(capture_id, CLUSTER, options, "image test", started)
    job = capture_job(spec, NODE, settings)
    return job["spec"]["template"]["spec"], s3_prefix(CLUSTER, capture_id, NODE.name)


class PodRun:
    """The pod's containers as podman processes, their logs in files, removed at the end."""

    def __init__(self, pod: dict[str, Any], image: str, workdir: Path, aws_env: dict[str, str]) -> None:
        fs_group = pod["securityContext"].get("fsGroup")
        self.volumes = {
            volume["name"]: empty_dir(workdir / volume["name"], fs_group) for volume in pod["volumes"]
        }
        self.pod, self.image, self.workdir, self.aws_env = pod, image, workdir, aws_env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.names: list[str] = []

    def start(self, container: str) -> None:
        # Pod Identity gives only the upload container credentials; the Job opts the capture one out.
        extra = self.aws_env if container == UPLOAD_CONTAINER else {}
        name = f"eks-capture-test-{container}-{uuid.uuid4().hex[:8]}"
        argv = podman_run_argv(
            self.pod, container, image=self.image, volumes=self.volumes, extra_env=extra, run_name=name
        )
        log = (self.workdir / f"{container}.log").open("wb")
        self.processes[container] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.names.append(name)

    def log(self, container: str) -> str:
        return (self.workdir / f"{container}.log").read_text()

    def wait(self, container: str, timeout: float = 90.0) -> int:
        return self.processes[container].wait(timeout=timeout)

    def remove(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for name in self.names:
            remove_container(name)


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    return make_bucket(BUCKET)


def send_datagrams(port: int, count: int, rate: float) -> None:
    """``count`` datagrams of 1000 bytes to a bound socket on 127.0.0.1:port, ``rate`` per second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", port))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            start = time.monotonic()
            for index in range(count):
                sender.sendto(b"x" * 1000, ("127.0.0.1", port))
                ahead = (index + 1) / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)


def tshark_datagrams(path: Path, port: int) -> int:
    """Frames in ``path`` that tshark decodes as UDP to ``port``."""
    argv = ["tshark", "-r", str(path), "-T", "fields", "-e", "udp.dstport"]
    fields = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    assert set(fields) <= {str(port)}, "the filter let other traffic in"
    return len(fields)


def packets_in_s3(prefix: str, workdir: Path, port: int) -> dict[str, int]:
    s3 = boto3.client("s3")
    counts = {}
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        if item["Key"].endswith(".pcap.zst"):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            local = workdir / Path(item["Key"]).name.removesuffix(".zst")
            local.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
            counts[item["Key"]] = tshark_datagrams(local, port)
    return counts


def test_the_jobs_containers_capture_in_the_image_and_every_packet_reaches_s3(
    capture_image: str, bucket: str, aws: MotoServer, tmp_path: Path
) -> None:
    port = free_port()
    pod, prefix = job_pod(capture_image, port)
    run = PodRun(pod, capture_image, tmp_path, aws.env())
    try:
        run.start(CAPTURE_CONTAINER)
        run.start(UPLOAD_CONTAINER)
        capture = run.processes[CAPTURE_CONTAINER]
        wait_for_log_line("capture running", lambda: run.log(CAPTURE_CONTAINER), capture, timeout=60)
        send_datagrams(port, DATAGRAMS, rate=1500)
        assert run.wait(CAPTURE_CONTAINER) == 0, run.log(CAPTURE_CONTAINER)
        assert run.wait(UPLOAD_CONTAINER) == 0, run.log(UPLOAD_CONTAINER)
    finally:
        run.remove()

    per_object = packets_in_s3(prefix, tmp_path, port)
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"{prefix}manifest.json")["Body"].read()
    manifest = json.loads(body)
    assert sum(per_object.values()) == DATAGRAMS
    assert len(per_object) >= 3, "1 MB rotation should have split ~3 MB into several objects"
    assert manifest["status"] == "complete"
    assert manifest["totals"]["packets"] == DATAGRAMS
    assert manifest["capture"]["completion"]["tcpdump"]["counters"]["captured"] == DATAGRAMS
    assert manifest["node"] == NODE.name
    assert manifest["instance_id"] == NODE.instance_id


def test_a_capture_container_without_setgid_fails_fast_in_the_image_naming_it(
    capture_image: str, tmp_path: Path
) -> None:
    pod, _ = job_pod(capture_image, free_port(), duration=60)
    (capture,) = (entry for entry in pod["containers"] if entry["name"] == CAPTURE_CONTAINER)
    capture["securityContext"]["capabilities"]["add"] = ["NET_RAW"]
    run = PodRun(pod, capture_image, tmp_path, {})
    try:
        run.start(CAPTURE_CONTAINER)
        assert run.wait(CAPTURE_CONTAINER, timeout=30) == 3, run.log(CAPTURE_CONTAINER)
    finally:
        run.remove()

    marker = json.loads((run.volumes["spool"] / "capture-done.json").read_text())
    assert marker["stop_reason"] == "start-failed"
    assert "SETGID" in marker["tcpdump"]["error"]


def test_the_image_runs_as_65532_by_default_and_keeps_no_setuid_or_setgid_file(capture_image: str) -> None:
    inspect = [*PODMAN, "image", "inspect", "--format", "{{.Config.User}}", capture_image]
    user = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.strip()
    find = [
        *PODMAN,
        "run",
        "--rm",
        *ULIMITS,
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "find",
        capture_image,
    ]
    found = subprocess.run(
        [*find, "/", "-xdev", "-type", "f", "-perm", "/6000"], capture_output=True, text=True, check=True
    )

    assert user == "65532:65532"
    assert found.stdout == ""
