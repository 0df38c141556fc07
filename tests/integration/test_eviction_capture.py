"""A capture pod whose spool passes its emptyDir sizeLimit is evicted by the node's kubelet, and the capture
says so with what reached S3 before: the real agent runs on the node that is this machine (tcpdump on
loopback traffic, uploads to moto), the emulator's eviction manager measures the spool as the kubelet does.
"""

from __future__ import annotations

import copy
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from eks_capture.captures import reaper, trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.indexer import index_object
from eks_capture.events.s3 import S3ObjectRef
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS, PODS
from tests.events import load_event
from tests.fixtures.kube import started_container_log
from tests.fixtures.sessions import stored_session
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.root

LOCAL_NODE = "ip-192-168-12-34.us-west-2.compute.internal"  # i-0a1b2c3d4e5f60718 in start-capture-instances
NAMESPACE = "eks-capture"
PORT = 18997
SIZE_LIMIT = "64Mi"


@pytest.fixture
def local_shop(shop: KubeEmulator) -> KubeEmulator:
    """``shop-prod`` whose node A is this machine: its pods run here, as processes."""
    shop.kubelet.local_nodes.add(LOCAL_NODE)
    return shop


def capture_pod(shop: KubeEmulator) -> dict[str, Any] | None:
    return next((p for p in shop.objects(PODS, NAMESPACE) if p["spec"].get("nodeName") == LOCAL_NODE), None)


def pcap_keys(bucket: str, prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [item["Key"] for item in listed if ".pcap" in item["Key"]]


def test_a_capture_pod_pushed_past_its_spool_size_limit_is_reported_evicted_with_what_it_uploaded(
    deps: Deps, local_shop: KubeEmulator
) -> None:
    settings = deps.settings.model_copy(
        update={"spool_size_limit": SIZE_LIMIT, "rotate_megabytes": 1, "rotate_seconds": 1}
    )
    quick = Deps(settings=settings, store=deps.store, aws=deps.aws)
    start = copy.deepcopy(load_event("start-capture-instances"))
    start["detail"].update(duration_seconds=120, filter=f"udp port {PORT}")
    outcome = trigger.handle(start, quick)
    assert list(outcome.nodes) == [LOCAL_NODE], outcome.message

    def capturing() -> dict[str, Any] | None:
        found = capture_pod(local_shop)
        log = found and started_container_log(local_shop, found, "capture")
        return found if log and "capture running" in log else None

    pod = eventually(capturing, timeout=30, interval=0.2, what="the agent never captured")
    prefix = f"captures/shop-prod/{outcome.capture_id}/{LOCAL_NODE}/"
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3000):  # ~3 MB over ~1.5 s: a few 1 s files, uploaded as they close
        sender.sendto(b"x" * 1000, ("127.0.0.1", PORT))
        time.sleep(0.0005)

    def two_files_uploaded() -> list[str] | None:
        keys = pcap_keys(settings.capture_bucket, prefix)
        return keys if len(keys) >= 2 else None

    uploaded = eventually(two_files_uploaded, timeout=30, interval=0.2, what="fewer than 2 files in S3")

    sandbox = local_shop.kubelet.local_pod(pod["metadata"]["uid"])
    assert sandbox is not None
    (sandbox.volumes["spool"] / "not-a-capture.bin").write_bytes(b"\0" * (70 << 20))  # past the 64Mi limit

    def evicted_pod() -> dict[str, Any] | None:
        found = capture_pod(local_shop)
        return found if found and found["status"].get("reason") == "Evicted" else None

    evicted = eventually(evicted_pod, timeout=30, interval=0.2, what="the pod was never evicted")
    message = f'Usage of EmptyDir volume "spool" exceeds the limit "{SIZE_LIMIT}". '
    assert evicted["status"]["message"] == message

    bucket, s3 = settings.capture_bucket, boto3.client("s3")
    keys = pcap_keys(bucket, prefix)
    assert len(keys) >= len(uploaded)
    for key in keys:
        index_object(S3ObjectRef(bucket, key, None, None, None), deps.store, s3)
    files = deps.store.files_of_capture(outcome.capture_id or "")
    moment = datetime.now(UTC) + timedelta(seconds=5)
    sweeper = Deps(settings=settings, store=deps.store, aws=deps.aws, now=lambda: moment)
    eventually(
        lambda: all(j.get("status", {}).get("failed") for j in local_shop.objects(JOBS, NAMESPACE)),
        timeout=30,
        interval=0.2,
        what="the Job never failed",
    )
    reaper.sweep(sweeper, ["shop-prod"])
    eventually(
        lambda: local_shop.objects(JOBS, NAMESPACE) == [],
        timeout=60,
        interval=0.2,
        what="the Job never deleted",
    )
    moment += timedelta(seconds=300)
    reaper.sweep(sweeper, ["shop-prod"])

    session = stored_session(deps, outcome.capture_id)
    node = session.nodes[LOCAL_NODE]
    assert node.status == "failed"
    packets = sum(f.packets for f in files)
    assert packets > 0
    assert node.reason == (
        f"evicted by the node's kubelet: {message.strip()}; "
        f"before that, {len(files)} file(s) with {packets} packets reached S3"
    )
    assert session.status == "failed"
