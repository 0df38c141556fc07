"""make demo: an alarm fires, capture pods start on the right node, real pcaps land in S3, get indexed,
and the capture is torn down; every step printed as it happens.

Runs the production code paths against the local cloud: template.yaml's wiring in moto's EventBridge,
the handlers in local Lambda processes, the capture agent as real processes (tcpdump on this
machine's loopback) for the node that is this machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from eks_capture.kube.labels import LABEL_CAPTURE_ID
from eks_capture.store.catalog import CaptureStore
from eks_capture_cli import run
from localcloud.cloud import LocalCloud, workdir
from localcloud.cloudwatch import set_alarm_state
from localcloud.demo_access import show_setup, show_teardown_view
from localcloud.kube.resources import JOBS, PODS
from localcloud.kube.status import ApiError
from localcloud.router import Invocation
from localcloud.traffic import CAPTURE_FILTER, FaultyTraffic

CLUSTER = "shop-prod"
LOCAL_NODE = "ip-192-168-12-34.us-west-2.compute.internal"
LOCAL_INSTANCE = "i-0a1b2c3d4e5f60718"
ALARM = "eks-capture-demo-dns-errors"
RECORDER_ALARM = "eks-capture-demo-conntrack"
DURATION_SECONDS = 30
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def describe(invocation: Invocation) -> str:
    result: Any = invocation.result
    if invocation.error:
        return f"{invocation.function} failed: {invocation.error['errorMessage']}"
    if "error" in result:
        return f"{invocation.function}: {result['error']['message']}"
    if invocation.function == "TriggerFunction":
        capture = f" ({result['capture_id']})" if result.get("capture_id") else ""
        return f"{invocation.function}: {result['status']}: {result['message']}{capture}"
    if invocation.function == "ReportFunction":
        made = result["report_key"] or f"no report ({result['problem']})"
        return f"{invocation.function}: {result['status']} {result['capture_id']}: {made}"
    if invocation.function == "IndexerFunction":
        return "; ".join(
            f"{invocation.function}: {f['status']} {f['key'].rsplit('/', 1)[-1]}: {f['message']}"
            for f in result["files"]
        )
    sweeps = result.get("sweeps", [])
    return f"{invocation.function}: " + "; ".join(
        f"{s['cluster']}: {s['jobs_seen']} job(s) seen, "
        f"deleted {s['deleted'] or 'none'}, closed {s['closed'] or 'none'}"
        for s in sweeps
    )


def create_alarm() -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        AlarmDescription="DNS errors on one node: capture its DNS and service traffic",
        Namespace="CWAgent",
        MetricName="ethtool_linklocal_allowance_exceeded",
        Dimensions=[{"Name": "InstanceId", "Value": LOCAL_INSTANCE}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[
            {"Key": "eks-capture:duration", "Value": str(DURATION_SECONDS)},
            {"Key": "eks-capture:filter", "Value": CAPTURE_FILTER},
        ],
    )


def subscribe_inbox(cloud: LocalCloud) -> str:
    """An SQS queue on the notification topic, standing in for the on-call engineer's mailbox."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="demo-oncall-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=cloud.output("NotificationTopicArn"), Protocol="sqs", Endpoint=arn)
    return url


def show_end_notification(inbox: str, capture_id: str) -> None:
    """The end notification as the on-call engineer receives it, and whether its report link opens."""
    sqs = boto3.client("sqs")
    for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
        notification = json.loads(message["Body"])
        if capture_id not in notification["Subject"] or "Report:" not in notification["Message"]:
            continue
        say(f"e-mail: {notification['Subject']}")
        for line in notification["Message"].splitlines():
            say(f"  {line}")
            if line.startswith("Report: http"):
                with urllib.request.urlopen(line.removeprefix("Report: "), timeout=10) as page:
                    say(f"  (the link opens: {len(page.read())} bytes of HTML)")


def show_logs(cloud: LocalCloud, pod: dict[str, Any]) -> None:
    """The last lines each container of a failed pod wrote, as ``kubectl logs`` shows them."""
    for container in pod["spec"]["containers"]:
        text = cloud.kube.kubelet.read_log(pod, container["name"])
        for line in text.strip().splitlines()[-5:]:
            say(f"  {container['name']}: {line[-400:]}")


def watch_capture(cloud: LocalCloud, capture_id: str, timeout: float) -> None:
    """Print each capture pod's phase changes until every Job of the capture has finished."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in cloud.kube.objects(PODS, cloud.stack.values["CaptureNamespace"]):
            if pod["metadata"].get("labels", {}).get(LABEL_CAPTURE_ID) != capture_id:
                continue
            name, phase = pod["metadata"]["name"], pod.get("status", {}).get("phase", "Pending")
            if seen.get(name) != phase:
                seen[name] = phase
                say(f"pod {name} on {pod['spec']['nodeName']}: {phase}")
                if phase == "Failed":
                    show_logs(cloud, pod)
        jobs = [
            j
            for j in cloud.kube.objects(JOBS, cloud.stack.values["CaptureNamespace"])
            if j["metadata"].get("labels", {}).get(LABEL_CAPTURE_ID) == capture_id
        ]
        if jobs and all(
            j.get("status", {}).get("succeeded") or j.get("status", {}).get("failed") for j in jobs
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(f"capture {capture_id} did not finish within {timeout:.0f}s")


def main() -> int:
    if os.geteuid() != 0:
        print("make demo captures real packets with tcpdump on this machine: run it as root", file=sys.stderr)
        return 2
    out = workdir("demo")
    log = (out / "lambda.log").open("w")
    say("starting the local cloud (moto, the emulated EKS cluster, template.yaml's wiring)")
    cloud = LocalCloud.start(
        CLUSTER,
        {
            "CaptureImageUri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64,
            "AlarmCooldownSeconds": "60",
            "NotificationEmail": "oncall@example.com",
        },
        local_nodes=(LOCAL_NODE,),
        settings_overrides={"ROTATE_SECONDS": "10", "UPLOAD_GRACE_SECONDS": "30"},
        lambda_log=log,
    )
    traffic = FaultyTraffic(seconds=DURATION_SECONDS + 240)
    try:
        inbox = subscribe_inbox(cloud)
        cloud.router.on_invocation = lambda invocation: say(describe(invocation))
        say(
            f"moto at {cloud.moto.endpoint_url}; EKS {CLUSTER} at {cloud.kube.url} "
            f"({len(cloud.kube.objects(PODS, 'payments'))} app pods); {LOCAL_NODE} is this machine"
        )
        say(
            f"stack deployed: {', '.join(cloud.router.functions)}; "
            f"bucket {cloud.output('CaptureBucketName')}, table {cloud.output('CaptureTableName')}"
        )
        show_setup(cloud, out, say)
        create_alarm()
        traffic.start()
        say("faulty traffic on loopback: a service, a closed port, a DNS server failing some names")
        cloud.router.start()
        say(f"alarm {ALARM} (InstanceId={LOCAL_INSTANCE}) goes to ALARM")
        set_alarm_state(
            ALARM, "ALARM", "Threshold Crossed: 1 datapoint [37.0] was greater than the threshold (0.0)"
        )
        store = CaptureStore(cloud.output("CaptureTableName"))
        capture_id = wait_for_capture(store)
        session = store.get_session(capture_id)
        assert session is not None
        for node, record in session.nodes.items():
            say(f"node chosen: {node} ({record.matched_by}); job {record.job}")
        for node, why in session.skipped.items():
            say(f"node skipped: {node}: {why}")
        watch_capture(cloud, capture_id, timeout=DURATION_SECONDS + 120)
        time.sleep(2)
        cloud.router.stop()
        cloud.router.drain(settle_seconds=2)
        say("teardown: the schedule comes due")
        cloud.router.fire_schedule("TeardownFunction")
        cloud.router.drain(settle_seconds=1)
        namespace = cloud.stack.values["CaptureNamespace"]
        cloud.kube.wait_for(
            lambda: not cloud.kube.objects(JOBS, namespace) and not cloud.kube.objects(PODS, namespace),
            timeout=30,
            what="capture jobs and their pods deleted",
        )
        say("teardown: the next sweep")
        cloud.router.fire_schedule("TeardownFunction")
        cloud.router.drain(settle_seconds=1)
        session = store.get_session(capture_id)
        assert session is not None
        say(f"capture {capture_id}: {session.status}: {session.verdict}")
        for node, record in session.nodes.items():
            say(f"  {node}: {record.status}: {record.reason}")
        for finding in session.findings:
            say(f"  finding: {finding}")
        show_end_notification(inbox, capture_id)
        cleaned = show_teardown_view(cloud, say)
        operator_view(cloud, capture_id, out)
        recorded = flight_recorder(cloud, store)
        say(f"traffic sent: {traffic.sent}; Lambda logs in {log.name}")
        captured = session.status == "completed" and session.totals.packets > 0
        return 0 if captured and cleaned and recorded else 1
    finally:
        traffic.stop()
        cloud.stop()
        log.close()


def put_request(cloud: LocalCloud, detail_type: str, detail: dict[str, Any]) -> None:
    """A manual request, sent as an operator would: to the stack's capture bus."""
    boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": cloud.output("CaptureEventBusName"),
                "Source": "eks-capture",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
            }
        ]
    )


def started_log(cloud: LocalCloud, pod: dict[str, Any], container: str) -> str:
    """The container's log so far; empty while it is still being created (the API answers 400 then)."""
    try:
        return cloud.kube.kubelet.read_log(pod, container)
    except ApiError:
        return ""


def wait_until_recording(cloud: LocalCloud, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in cloud.kube.objects(PODS, cloud.stack.values["CaptureNamespace"]):
            ours = "recorder" in pod["metadata"]["name"] and pod["spec"].get("nodeName") == LOCAL_NODE
            if ours and "capture running" in started_log(cloud, pod, "record"):
                say(f"recorder pod {pod['metadata']['name']} keeps a ring of the last minutes")
                return
        time.sleep(0.5)
    raise TimeoutError("the recorder never started")


def flight_recorder(cloud: LocalCloud, store: CaptureStore) -> bool:
    """Act two: with the recorder on, the capture reaches back before the alarm."""
    say("--- flight recorder: the packets from before the alarm ---")
    cloud.router.start()
    put_request(
        cloud,
        "Start Recorder",
        {
            "cluster": CLUSTER,
            "node_selector": {"matchLabels": {"kubernetes.io/hostname": LOCAL_NODE}},
            "filter": CAPTURE_FILTER,
            "ring_minutes": 3,
            "budget_megabytes": 256,
            "reason": "demo: keep the recent past on the DNS-troubled node",
        },
    )
    wait_until_recording(cloud)
    say("the fault goes on for 20 s before anybody's alarm notices")
    time.sleep(20)
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=RECORDER_ALARM,
        Namespace="CWAgent",
        MetricName="ethtool_conntrack_allowance_exceeded",
        Dimensions=[{"Name": "InstanceId", "Value": LOCAL_INSTANCE}],
        Statistic="Maximum",
        Period=10,
        EvaluationPeriods=3,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[
            {"Key": "eks-capture:duration", "Value": "10"},
            {"Key": "eks-capture:filter", "Value": CAPTURE_FILTER},
        ],
    )
    fired_at = datetime.now(UTC)
    say(f"alarm {RECORDER_ALARM} goes to ALARM at {fired_at:%H:%M:%S}")
    set_alarm_state(RECORDER_ALARM, "ALARM", "Threshold Crossed: 3 datapoints were greater than 0.0")
    capture_id = wait_for_capture(store, alarm=RECORDER_ALARM)
    session = store.get_session(capture_id)
    assert session is not None
    manifest = wait_for_manifest(cloud, f"{session.s3_prefix}{LOCAL_NODE}/manifest.json", timeout=120)
    say(f"recorder window uploaded: {manifest['window']['reach']}")
    deadline = session.expires_at.timestamp() + 2
    while time.time() < deadline:
        time.sleep(0.5)
    cloud.router.stop()
    cloud.router.drain(settle_seconds=2)
    cloud.router.fire_schedule("TeardownFunction")
    cloud.router.drain(settle_seconds=1)
    session = store.get_session(capture_id)
    assert session is not None
    files = store.files_of_capture(capture_id)
    first = min((f.first_ts for f in files if f.first_ts), default=None)
    before = [f for f in files if f.pre_trigger]
    say(f"capture {capture_id}: {session.status}: {session.verdict}")
    if first is not None:
        say(
            f"first packet {first:%H:%M:%S.%f} UTC: {(fired_at - first).total_seconds():.1f} s "
            f"before the alarm; {len(before)} of {len(files)} file(s) flagged pre-trigger"
        )
    put_request(cloud, "Stop Recorder", {"cluster": CLUSTER, "reason": "demo over"})
    cloud.router.drain(settle_seconds=1)
    return first is not None and first < fired_at and session.status == "completed"


def wait_for_manifest(cloud: LocalCloud, key: str, timeout: float) -> dict[str, Any]:
    s3 = boto3.client("s3")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket=cloud.output("CaptureBucketName"), Key=key)["Body"].read()
            return dict(json.loads(body))
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
    raise TimeoutError(f"s3 object {key} never arrived")


def operator_view(cloud: LocalCloud, capture_id: str, out: Path) -> None:
    """What the SRE does next, with the eks-capture CLI: list, show, the report, one merged pcapng."""
    os.environ.setdefault("COLUMNS", "150")  # rich tables at a readable width when the output is not a TTY
    os.environ.update(
        EKS_CAPTURE_TABLE=cloud.output("CaptureTableName"),
        EKS_CAPTURE_BUCKET=cloud.output("CaptureBucketName"),
        EKS_CAPTURE_BUS=cloud.output("CaptureEventBusName"),
    )
    steps = [
        ["list", "--cluster", CLUSTER],
        ["show", capture_id],
        ["report", capture_id, "-o", str(out / "report.html")],
        ["pull", capture_id, "-o", str(out / "pcaps"), "--merge", str(out / "capture.pcapng")],
    ]
    for args in steps:
        say(f"$ eks-capture {' '.join(args)}")
        code = run(args)
        if code != 0:
            raise RuntimeError(f"eks-capture {args[0]} exited {code}")
    say(f"open {out / 'report.html'} in a browser, {out / 'capture.pcapng'} in Wireshark")


def wait_for_capture(store: CaptureStore, alarm: str = ALARM, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = store.sessions_for_alarm(alarm)
        if sessions and sessions[0].status != "starting":
            return sessions[0].capture_id
        time.sleep(0.2)
    raise TimeoutError("the alarm started no capture")


if __name__ == "__main__":
    raise SystemExit(main())
