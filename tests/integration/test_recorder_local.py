"""The recorder end to end on the node that is this machine: the real signal path, from alarm to findings.

Start Recorder creates the DaemonSet (with 4 s files, ``RECORDER_ROTATE_SECONDS``, where production
keeps 10 s); the emulator's kubelet runs its pod on the local node as real processes (tcpdump on this
machine); faulty traffic starts at T0 on loopback; the alarm fires at T0 + 10 s and the trigger
annotates the recorder pod; the kubelet rewrites the pod's downward-API file;
the agent uploads the window; the indexer analyzes what landed in S3.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.indexer import index_object
from eks_capture.events.s3 import S3ObjectRef
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import PODS
from tests.events import load_event
from tests.fixtures.kube import started_container_log
from tests.fixtures.waiting import eventually

pytestmark = [pytest.mark.root, pytest.mark.slow]

LOCAL_NODE = "ip-192-168-12-34.us-west-2.compute.internal"  # i-0a1b2c3d4e5f60718 in the sample alarm
NAMESPACE = "eks-capture"
ALARM = "eks-capture-recorder-e2e"
HEALTHY_PORT, CLOSED_PORT = 18480, 18481
ROTATE_SECONDS, FAULT_SECONDS = 4, 10  # the alarm fires 2.5 files into the fault
CAPTURE_FILTER = f"tcp port {HEALTHY_PORT} or tcp port {CLOSED_PORT}"


class Traffic:
    """Connections to a healthy local service, then (from ``fault_at``) to a closed port: refused."""

    def __init__(self, fault_at: float) -> None:
        self.fault_at = fault_at
        self.refused = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", HEALTHY_PORT), reuse_port=True)
        self._threads = [
            threading.Thread(target=self._serve, daemon=True),
            threading.Thread(target=self._client),
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._server.close()
        self._threads[1].join()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            connection.sendall(b"ok")
            connection.close()

    def _client(self) -> None:
        while not self._stop.wait(0.05):
            port = CLOSED_PORT if time.time() >= self.fault_at else HEALTHY_PORT
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                    connection.recv(8)
            except ConnectionRefusedError:
                self.refused += 1
            except OSError:
                continue


@pytest.fixture
def local_shop(shop: KubeEmulator) -> KubeEmulator:
    """``shop-prod`` whose node A is this machine: its pods run here, as processes."""
    shop.kubelet.local_nodes.add(LOCAL_NODE)
    return shop


def recorder_pod(shop: KubeEmulator) -> dict[str, Any] | None:
    for pod in shop.objects(PODS, NAMESPACE):
        if pod["spec"].get("nodeName") == LOCAL_NODE and "recorder" in pod["metadata"]["name"]:
            return pod
    return None


def wait_until_recording(shop: KubeEmulator, timeout: float = 30) -> dict[str, Any]:
    def recording() -> dict[str, Any] | None:
        pod = recorder_pod(shop)
        log = pod and started_container_log(shop, pod, "record")
        return pod if log and "capture running" in log else None

    def why() -> str:
        pod = recorder_pod(shop)
        log = pod and started_container_log(shop, pod, "record")
        return f"the recorder never started: {(log or 'no log: its container has not started')[-2000:]}"

    return eventually(recording, timeout=timeout, interval=0.2, what=why)


def alarm_now(duration: int) -> dict[str, Any]:
    """The sample alarm on node A, firing now, for a short capture; the alarm exists in CloudWatch."""
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        Namespace="CWAgent",
        MetricName="ethtool_conntrack_allowance_exceeded",
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=3,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    event = copy.deepcopy(load_event("alarm-single-metric-instance"))
    now = datetime.now(UTC)
    event["id"] = str(uuid.uuid4())
    event["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["resources"] = [f"arn:aws:cloudwatch:us-west-2:123456789012:alarm:{ALARM}"]
    event["detail"]["alarmName"] = ALARM
    event["detail"]["state"]["timestamp"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    event["detail"]["alarmTags"]["eks-capture:duration"] = str(duration)
    return event


def wait_for_object(bucket: str, key: str, timeout: float) -> dict[str, Any]:
    s3 = boto3.client("s3")

    def document() -> dict[str, Any] | None:
        try:
            return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        except s3.exceptions.NoSuchKey:
            return None

    return eventually(document, timeout=timeout, interval=0.5, what=f"s3://{bucket}/{key} never arrived")


def test_the_capture_holds_the_fault_from_before_the_alarm_and_the_findings_report_it(
    deps: Deps, local_shop: KubeEmulator
) -> None:
    settings = deps.settings.model_copy(update={"recorder_rotate_seconds": ROTATE_SECONDS})
    deps = dataclasses.replace(deps, settings=settings)
    start = copy.deepcopy(load_event("start-recorder"))
    start["detail"]["node_selector"] = {"matchLabels": {"kubernetes.io/hostname": LOCAL_NODE}}
    start["detail"].update(filter=CAPTURE_FILTER, ring_minutes=3)
    assert trigger.handle(start, deps).status == "recording"
    wait_until_recording(local_shop)
    fault_at = time.time() + 3
    bucket = deps.settings.capture_bucket
    with Traffic(fault_at) as traffic:
        time.sleep(fault_at + FAULT_SECONDS - time.time())
        alarm = alarm_now(duration=10)
        fired_at = datetime.fromisoformat(alarm["detail"]["state"]["timestamp"]).timestamp()
        outcome = trigger.handle(alarm, deps)
        refused_before_alarm = traffic.refused
        assert outcome.nodes == {LOCAL_NODE: "running"}, outcome.message
        prefix = f"captures/shop-prod/{outcome.capture_id}/{LOCAL_NODE}/"
        manifest = wait_for_object(bucket, f"{prefix}manifest.json", timeout=60)

    assert manifest["status"] == "complete", manifest["incomplete_reasons"]
    assert "held only" in manifest["window"]["reach"], "the 90 s lookback reaches past the ring's start"
    s3 = boto3.client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"] if ".pcap" in o["Key"]
    ]
    records = [index_object(S3ObjectRef(bucket, key, None, None, None), deps.store, s3) for key in keys]
    assert all(record.status == "indexed" for record in records)
    files = deps.store.files_of_capture(outcome.capture_id or "")
    before = [f for f in files if f.pre_trigger]
    assert before, "files ending before the alarm are flagged pre-trigger in the index"
    assert all(f.last_ts is not None and f.last_ts.timestamp() < fired_at for f in before)
    assert min(f.first_ts for f in files if f.first_ts) < datetime.fromtimestamp(fault_at, UTC)
    refused = sum(
        finding["count"]
        for f in before
        for finding in f.summary["findings"]
        if finding["kind"] == "tcp.refused"
    )
    # Pre-trigger files end before the alarm: at most one 4 s rotation of the 10 s fault falls outside.
    assert refused >= 0.4 * refused_before_alarm > 30, (refused, refused_before_alarm)
