"""What a capture Job's state means for its node, and whether the reaper should remove it (pure).

Kubernetes says *what* happened in several places (Job conditions, pod phase, container states, the
scheduler's condition); the operator wants one verdict per node in words. These functions turn the
API's JSON into that verdict and into the reaper's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eks_capture.kube.labels import ANNOTATION_EXPIRES_AT
from eks_capture.store.sessions import NodeStatus

KUBELET_REJECTED = "Pod was rejected: "  # pkg/kubelet rejectPod's prefix
STUCK_REASONS = ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName")


@dataclass(frozen=True)
class Verdict:
    """A node's outcome, and whether its Job must now be deleted (and why, for the metrics)."""

    status: NodeStatus
    reason: str
    delete: bool


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _container_failure(pod: dict[str, Any]) -> str:
    """The first failed container's story: which one, its exit code, and what it said."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            message = (terminated.get("message") or terminated.get("reason") or "").strip()
            said = f": {message}" if message else ""
            return f"container {status['name']} exited {terminated['exitCode']}{said}"
    return (pod.get("status") or {}).get("message") or "the pod failed"


def _kubelet_rejection(pod: dict[str, Any]) -> str | None:
    """Why the node's kubelet refused to run the pod (``OutOfpods`` on a full node...), if it did: the
    pod is Failed with a reason and no container of it ever started."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed" or not status.get("reason"):
        return None
    for container in status.get("containerStatuses") or []:
        if {"running", "terminated"} & set(container.get("state") or {}):
            return None
    said = str(status.get("message") or "").removeprefix(KUBELET_REJECTED)
    return f"the node's kubelet rejected the pod ({status['reason']}): {said}".rstrip(": ")


def _stuck_reason(pod: dict[str, Any]) -> str | None:
    """Why a pod has not started: unschedulable, or an image or config it cannot get."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"unschedulable: {condition.get('message') or condition.get('reason')}"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return f"container {container['name']} {waiting['reason']}: {waiting.get('message', '')}".rstrip(
                ": "
            )
    return None


def judge(
    job: dict[str, Any], pods: list[dict[str, Any]], now: datetime, pending_bound: timedelta, grace: timedelta
) -> Verdict:
    """The verdict on one capture Job given its pods, at ``now``."""
    metadata = job.get("metadata") or {}
    created = parse_time(metadata.get("creationTimestamp")) or now
    expires = parse_time((metadata.get("annotations") or {}).get(ANNOTATION_EXPIRES_AT))
    if metadata.get("deletionTimestamp"):
        return Verdict("stopped", "being deleted: the uploader is flushing its last files", False)
    if _condition(job, "Complete"):
        return Verdict("completed", "captured and uploaded everything", True)
    rejected = next((why for pod in pods if (why := _kubelet_rejection(pod))), None)
    if rejected:
        return Verdict("never_started", rejected, True)
    failed = _condition(job, "Failed")
    if failed:
        if failed.get("reason") == "DeadlineExceeded":
            return Verdict("deadline_exceeded", "stopped by the Job's activeDeadlineSeconds", True)
        failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        story = _container_failure(failed_pods[0]) if failed_pods else failed.get("message", "the Job failed")
        return Verdict("failed", story, True)
    if expires is not None and now > expires + grace:
        return Verdict(
            "deadline_exceeded",
            f"still running {int((now - expires).total_seconds())} s after its expiry: deleted by the reaper",
            True,
        )
    pending = [p for p in pods if (p.get("status") or {}).get("phase") in (None, "Pending")]
    if pending and now - created > pending_bound:
        reason = _stuck_reason(pending[0]) or "still Pending"
        return Verdict("never_started", f"{reason} after {int((now - created).total_seconds())} s", True)
    if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
        return Verdict("running", "capturing", False)
    return Verdict("pending", "waiting for its pod to start", False)
