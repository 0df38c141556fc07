"""The flight recorder, trigger side: turn it on and off, find healthy recorder pods, ask them for a window.

A window request is an annotation on the recorder pod (``eks-capture.io/window-request``); the agent
reads it through a downward-API volume, so the pod holds no Kubernetes credentials. The kubelet
refreshes such files within about a minute, which is why the lookback is capped below the ring length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from eks_capture.events.models import StartRecorder, StopRecorder
from eks_capture.ids import CaptureId
from eks_capture.kube.calls import Cluster
from eks_capture.kube.labels import (
    ANNOTATION_RING_SECONDS,
    ANNOTATION_WINDOW_REQUEST,
    recorder_labels,
    recorder_selector,
)
from eks_capture.kube.manifests.daemonset import RECORDER_NAME, RecorderSpec, recorder_daemonset
from eks_capture.kube.manifests.job import s3_prefix
from eks_capture.settings import Settings
from eks_capture.times import iso_utc

logger = Logger(child=True)

DOWNWARD_REFRESH_SECONDS = 90  # kubelet sync period (~60 s) plus its cache TTL: how late a request arrives
LOOKBACK_MARGIN_SECONDS = 60  # the fault began before the first breaching datapoint's period
DEFAULT_LOOKBACK_SECONDS = 300
RESTARTS_UNHEALTHY = 3


@dataclass(frozen=True)
class RecorderPod:
    """A recorder pod on one node, with the length of its ring."""

    name: str
    node: str
    ring_seconds: int


@dataclass(frozen=True)
class Window:
    """The span a recorder is asked to upload, and why it may be shorter than the lookback asked."""

    start: datetime
    end: datetime
    trigger_at: datetime
    lookback_asked: int
    lookback: int

    @property
    def note(self) -> str:
        """How far back the capture reaches, said in the node's verdict."""
        reach = f"{self.lookback} s before the trigger"
        if self.lookback < self.lookback_asked:
            return (
                f"reaches {reach}: the ring holds only {_minutes(self.lookback)} of the "
                f"{_minutes(self.lookback_asked)} asked"
            )
        return f"reaches {reach}"


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds} s"


def plan_window(trigger_at: datetime, lookback: int, duration: int, ring_seconds: int) -> Window:
    """[trigger - lookback, trigger + duration], the lookback capped by what the ring holds on arrival."""
    held = max(0, ring_seconds - DOWNWARD_REFRESH_SECONDS)
    reach = min(lookback, held)
    return Window(
        start=trigger_at - timedelta(seconds=reach),
        end=trigger_at + timedelta(seconds=duration),
        trigger_at=trigger_at,
        lookback_asked=lookback,
        lookback=reach,
    )


def window_request(capture_id: CaptureId, cluster: str, node: str, window: Window) -> str:
    """The annotation's value: what the agent parses (capture-image/eks_capture_agent/recorder_windows.py)."""
    return json.dumps(
        {
            "capture_id": capture_id,
            "from": iso_utc(window.start, micros=True),
            "to": iso_utc(window.end, micros=True),
            "trigger_at": iso_utc(window.trigger_at, micros=True),
            "prefix": s3_prefix(cluster, capture_id, node),
        },
        sort_keys=True,
    )


def alarm_lookback(cloudwatch: Any, alarm_name: str) -> int:
    """Period x EvaluationPeriods of the alarm (its slowest metric for metric math), plus a margin."""
    try:
        response = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["MetricAlarm"])
    except (BotoCoreError, ClientError) as error:  # costs precision, never the capture
        logger.warning("DescribeAlarms failed: default lookback", extra={"error": str(error)})
        return DEFAULT_LOOKBACK_SECONDS
    alarms = response.get("MetricAlarms") or []
    if not alarms:
        return DEFAULT_LOOKBACK_SECONDS
    alarm = alarms[0]
    periods = [int(alarm["Period"])] if alarm.get("Period") else []
    periods += [
        int(query["MetricStat"]["Period"]) for query in alarm.get("Metrics") or [] if query.get("MetricStat")
    ]
    if not periods:
        return DEFAULT_LOOKBACK_SECONDS
    return max(periods) * int(alarm.get("EvaluationPeriods") or 1) + LOOKBACK_MARGIN_SECONDS


def recorder_problem(pod: dict[str, Any]) -> str | None:
    """Why a recorder pod cannot serve a window now; None when it is healthy."""
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return "being deleted"
    if status.get("phase") != "Running":
        return f"phase {status.get('phase') or 'unknown'}"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "running" not in state:
            waiting = (state.get("waiting") or {}).get("reason") or "not running"
            return f"container {container.get('name')} {waiting}"
        if int(container.get("restartCount") or 0) >= RESTARTS_UNHEALTHY:
            return f"container {container.get('name')} restarted {container['restartCount']} times"
    return None


def _ring_seconds(pod: dict[str, Any]) -> int:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(ANNOTATION_RING_SECONDS, "0"))
    except ValueError:
        return 0


def recorder_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Every recorder pod of the capture namespace (one label-selected list)."""
    return cluster.pods(namespace, recorder_selector())


def find_recorders(
    cluster: Cluster, namespace: str, every_pod: list[dict[str, Any]] | None = None
) -> dict[str, RecorderPod]:
    """Healthy recorders by node: from a cluster-wide pod list already made, else listed only if the
    recorder DaemonSet exists (a cluster without one pays one small list call, not a pod list)."""
    if every_pod is not None:
        pods = [
            pod
            for pod in every_pod
            if (pod.get("metadata") or {}).get("namespace") == namespace
            and recorder_labels().items() <= ((pod.get("metadata") or {}).get("labels") or {}).items()
        ]
    elif cluster.recorder_daemonsets(namespace):
        pods = recorder_pods(cluster, namespace)
    else:
        return {}
    return healthy_recorders(pods)


def healthy_recorders(pods: list[dict[str, Any]]) -> dict[str, RecorderPod]:
    """Node name -> its healthy recorder pod."""
    found: dict[str, RecorderPod] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and recorder_problem(pod) is None:
            found[node] = RecorderPod(pod["metadata"]["name"], node, _ring_seconds(pod))
    return found


def unhealthy_recorders(pods: list[dict[str, Any]]) -> dict[str, str]:
    """Pod name -> why it cannot record (for the reaper's report)."""
    return {pod["metadata"]["name"]: why for pod in pods if (why := recorder_problem(pod)) is not None}


def request_window(
    cluster: Cluster, namespace: str, recorder: RecorderPod, capture_id: CaptureId, window: Window
) -> None:
    """Annotate the recorder pod with the window; its agent uploads it under the capture's prefix."""
    value = window_request(capture_id, cluster.name, recorder.node, window)
    cluster.annotate_pod(namespace, recorder.name, {ANNOTATION_WINDOW_REQUEST: value})


def windows_asked(cluster: Cluster, namespace: str, capture_id: CaptureId) -> list[str]:
    """The recorder pods whose window request names ``capture_id``: an earlier attempt of the capture asked
    them for a window, which their agents upload under the capture's prefix (no Job to find)."""
    asked = []
    for pod in recorder_pods(cluster, namespace):
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_WINDOW_REQUEST)
        try:
            request = json.loads(value) if value else None
        except ValueError:  # not ours to judge here: the agent says what it could not read
            continue
        if isinstance(request, dict) and request.get("capture_id") == capture_id:
            asked.append(pod["metadata"]["name"])
    return asked


def recorder_spec(event: StartRecorder) -> RecorderSpec:
    """The DaemonSet's inputs from a Start Recorder event."""
    detail = event.detail
    return RecorderSpec(
        cluster=detail.cluster,
        node_selector=detail.node_selector,
        filter=detail.filter,
        snaplen=detail.snaplen,
        ring_minutes=detail.ring_minutes,
        budget_megabytes=detail.budget_megabytes,
        reason=detail.reason,
    )


def enable(event: StartRecorder, cluster: Cluster, settings: Settings) -> str:
    """Create or update the recorder DaemonSet; says which."""
    done = cluster.apply_daemonset(
        settings.capture_namespace, recorder_daemonset(recorder_spec(event), settings)
    )
    logger.info(f"recorder {done} in {event.detail.cluster}", extra={"detail": event.detail.model_dump()})
    return done


def disable(event: StopRecorder, cluster: Cluster, settings: Settings) -> bool:
    """Delete the recorder DaemonSet; False when there was none."""
    deleted = cluster.delete_daemonset(settings.capture_namespace, RECORDER_NAME)
    logger.info(f"recorder in {event.detail.cluster} {'deleted' if deleted else 'was not running'}")
    return deleted


def window_verdict(manifest: dict[str, Any] | None) -> tuple[Literal["completed", "failed"], str]:
    """A recorder node's status and reason from its window manifest: how far back the capture reaches."""
    if manifest is None:
        return "failed", "the recorder wrote no manifest for its window (was its pod gone?)"
    totals = manifest.get("totals") or {}
    window = manifest.get("window") or {}
    reason = (
        f"{totals.get('files', 0)} file(s) from the recorder's ring, {totals.get('pre_trigger_files', 0)} "
        f"before the trigger; {window.get('reach', 'reach unknown')}"
    )
    problems = manifest.get("incomplete_reasons") or []
    if problems:
        reason += "; incomplete: " + "; ".join(problems)
    return "completed", reason


#: What S3 answers for a key it does not hold: NoSuchKey (404), or AccessDenied (403) to a reader that may
#: not list the bucket, as the sweep's role may only get manifests.
ABSENT_OBJECT_CODES = ("NoSuchKey", "404", "NotFound", "AccessDenied", "403")


def read_window_manifest(s3: Any, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The node's manifest (a capture Job's or a recorder's window's) under its prefix, or None when S3
    holds none. Any other failure (a throttle, a 5xx, the network) is raised: it says nothing of the node,
    and the sweep tries the session again next time."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ABSENT_OBJECT_CODES:
            return None
        raise
    document = json.loads(body)
    return document if isinstance(document, dict) else None
