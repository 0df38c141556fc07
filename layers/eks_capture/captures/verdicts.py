"""What a capture Job's state means for its node, and whether the reaper should remove it (pure).

Kubernetes says *what* happened in several places (Job conditions, pod phase, container states, the
scheduler's condition); the operator wants one verdict per node in words. These functions turn the
API's JSON into that verdict and into the reaper's decision.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from eks_capture.kube.jobs import CaptureJob
from eks_capture.store.files import FileRecord
from eks_capture.store.sessions import NodeCapture, NodeStatus, SessionStatus
from eks_capture.times import iso_utc, parse_iso

KUBELET_REJECTED = "Pod was rejected: "  # pkg/kubelet rejectPod's prefix
#: A node that ended in one of these counts as captured, once S3 proves it took packets.
CAPTURED_STATES: tuple[NodeStatus, ...] = ("completed", "stopped", "deadline_exceeded")
#: A verdict names at most this many nodes sharing one outcome; the rest are counted.
NAMED_TOGETHER = 3
Said = TypeVar("Said", bound=Hashable)
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
STUCK_REASONS = ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName")


@dataclass(frozen=True)
class Verdict:
    """A node's outcome, and whether its Job must now be deleted (and why, for the metrics)."""

    status: NodeStatus
    reason: str
    delete: bool


def _container_failure(pod: dict[str, Any]) -> str:
    """The first failed container's story: which one, its exit code, and what it said."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            message = (terminated.get("message") or terminated.get("reason") or "").strip()
            said = f": {message}" if message else ""
            return f"container {status['name']} exited {terminated['exitCode']}{said}"
    return (pod.get("status") or {}).get("message") or "the pod failed"


def _eviction(pod: dict[str, Any]) -> str | None:
    """Why the node's kubelet evicted the pod (an emptyDir past its sizeLimit, node pressure), if it did."""
    status = pod.get("status") or {}
    if status.get("phase") != "Failed" or status.get("reason") != "Evicted":
        return None
    said = str(status.get("message") or "").strip()
    return f"evicted by the node's kubelet: {said}".rstrip(": ")


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


def never_had_a_pod(job: CaptureJob, pods: list[dict[str, Any]]) -> bool:
    """No pod of the Job exists, and its status counts none that ever ran or ended."""
    return not pods and not job.had_pods


def _podless(refusal: str | None, waited: int, ended: str = "") -> Verdict:
    """A Job that never got a pod: the cluster's own reason when its controller recorded one."""
    if refusal:
        why = f"the cluster refused its pod (FailedCreate): {refusal}"
    elif ended:
        why = f"its Job ended ({ended}) without ever creating a pod"
    else:
        why = f"its Job created no pod in {waited} s"
    return Verdict("never_started", why, True)


def judge(
    job: CaptureJob,
    pods: list[dict[str, Any]],
    now: datetime,
    pending_bound: timedelta,
    grace: timedelta,
    refusal: str | None = None,
) -> Verdict:
    """The verdict on one capture Job given its pods, at ``now``; ``refusal`` is the message of the Job's
    latest ``FailedCreate`` event, when the Job controller could not create its pod."""
    created = job.created_at or now
    waited = int((now - created).total_seconds())
    expires = job.expires_at
    if job.deleting:
        return Verdict("stopped", "being deleted: the uploader is flushing its last files", False)
    if job.completed:
        return Verdict("completed", "captured and uploaded everything", True)
    rejected = next((why for pod in pods if (why := _kubelet_rejection(pod))), None)
    if rejected:
        return Verdict("never_started", rejected, True)
    evicted = next((why for pod in pods if (why := _eviction(pod))), None)
    if evicted:
        return Verdict("failed", evicted, True)
    podless = never_had_a_pod(job, pods)
    failed = job.failure
    if failed:
        if podless:
            return _podless(refusal, waited, failed.reason or "Failed")
        if failed.reason == "DeadlineExceeded":
            return Verdict("deadline_exceeded", "stopped by the Job's activeDeadlineSeconds", True)
        failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        story = _container_failure(failed_pods[0]) if failed_pods else failed.message or "the Job failed"
        return Verdict("failed", story, True)
    late = now - created > pending_bound
    if podless and (late or (expires is not None and now > expires + grace)):
        return _podless(refusal, waited)
    if expires is not None and now > expires + grace:
        return Verdict(
            "deadline_exceeded",
            f"still running {int((now - expires).total_seconds())} s after its expiry: deleted by the reaper",
            True,
        )
    pending = [p for p in pods if (p.get("status") or {}).get("phase") in (None, "Pending")]
    if pending and late:
        reason = _stuck_reason(pending[0]) or "still Pending"
        return Verdict("never_started", f"{reason} after {waited} s", True)
    if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
        return Verdict("running", "capturing", False)
    if refusal:
        return Verdict("pending", f"its pod is refused so far: {refusal}", False)
    return Verdict("pending", "waiting for its pod to start", False)


@dataclass(frozen=True)
class Evidence:
    """What reached S3 from one node: the packets of its files, and its manifest (None: none)."""

    file_packets: int = 0
    manifest: dict[str, Any] | None = None
    files: int = 0  # its files: those indexed as its manifest lists them, and those listed but not indexed

    @property
    def packets(self) -> int:
        """Packets proven taken: the files', or the manifest's (uploaded, and dropped for the spool budget
        after tcpdump wrote them), whichever is more."""
        manifest = self.manifest or {}
        uploaded = int((manifest.get("totals") or {}).get("packets") or 0)
        items = (manifest.get("dropped") or {}).get("items") or []
        return max(self.file_packets, uploaded + sum(int(item.get("packets") or 0) for item in items))


def unindexed_files(manifest: dict[str, Any] | None, indexed: dict[str, int]) -> list[dict[str, Any]]:
    """The files a node's manifest lists as in S3 (each upload confirmed by a HEAD before it is listed)
    that the index does not hold as listed: ``indexed`` maps each indexed key to its size (the object's
    ContentLength), and a listed file is indexed only when that is its ``stored_bytes`` (the size its
    upload's HEAD confirmed). A key written again (the recorder puts a longer copy of a file tcpdump still
    had open) may be indexed as its earlier version while the later one's indexer still runs or retries."""
    listed = (manifest or {}).get("files") or []
    return [
        f
        for f in listed
        if isinstance(f, dict) and f.get("key") and indexed.get(f["key"]) != f.get("stored_bytes")
    ]


def listed_packets(files: Iterable[dict[str, Any]]) -> int:
    """The packets of files as their manifest counts them (a count the agent could not read is 0)."""
    return sum(int(f.get("packets") or 0) for f in files)


def counted_files(files: list[FileRecord], unindexed: Iterable[dict[str, Any]]) -> list[FileRecord]:
    """The indexed ``files`` that count: all but those whose key a manifest lists ``unindexed`` (an earlier
    version of it), which count as their manifest counts them, so no key counts twice."""
    late = {f["key"] for f in unindexed}
    return [f for f in files if f.s3_key not in late]


def node_evidence(
    files: list[FileRecord], node: str, manifest: dict[str, Any] | None, unindexed: list[dict[str, Any]]
) -> Evidence:
    """What reached S3 from ``node``: its indexed ``files``, and those its manifest lists that are not
    indexed as listed (``unindexed``, counted as the manifest counts them instead of any earlier version
    the index holds)."""
    indexed = [f for f in counted_files(files, unindexed) if f.node == node]
    packets = sum(f.packets for f in indexed) + listed_packets(unindexed)
    return Evidence(packets, manifest, len(indexed) + len(unindexed))


def listed_at(manifest: dict[str, Any]) -> datetime | None:
    """When the manifest was written (``written_at``): every file it lists was in S3, its Object Created
    event sent, by then. None when the agent did not say, or said it without a zone."""
    try:
        moment = parse_iso(str(manifest.get("written_at") or ""))
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def proven(node: NodeCapture, evidence: Evidence) -> NodeCapture:
    """A node whose Job ended as if it captured counts as captured only when S3 proves packets were taken;
    otherwise it failed, and its reason says what S3 holds and what its Job said."""
    if node.status not in CAPTURED_STATES:
        if evidence.packets > 0:  # what it took before it failed (an eviction, a crash) is in S3 still
            uploaded = f"; before that, {evidence.files} file(s) with {evidence.packets} packets reached S3"
            return node.model_copy(update={"reason": node.reason + uploaded})
        return node
    if evidence.packets > 0:
        return node
    if evidence.manifest is None:
        why = "no manifest and no packet reached S3"
    else:
        told = "; ".join(str(r) for r in evidence.manifest.get("incomplete_reasons") or [])
        why = "its manifest counts no packet" + (f" ({told})" if told else "")
    said = f"{node.status.replace('_', ' ')}: {node.reason}" if node.reason else node.status.replace("_", " ")
    return node.model_copy(update={"status": "failed", "reason": f"{why}; its Job: {said}"})


def top_findings(summaries: Iterable[dict[str, Any]], limit: int = 5) -> list[str]:
    """The capture's most severe findings, each summed over its files (same kind, same subject).

    Each file's message carries that file's count; the summed message is the latest file's message with
    its count replaced by the total.
    """
    merged: dict[tuple[str, str], tuple[int, int, str, int]] = {}
    for summary in summaries:
        for finding in summary.get("findings", []):
            key = (str(finding.get("kind", "")), str(finding.get("subject", finding.get("message", ""))))
            rank = SEVERITY_ORDER.get(finding.get("severity", "info"), 3)
            count = int(finding.get("count") or 0)
            before = merged.get(key)
            total = count + (before[1] if before else 0)
            worst = min(rank, before[0]) if before else rank
            merged[key] = (worst, total, str(finding.get("message", "")), count)
    ordered = sorted(merged.values(), key=lambda item: (item[0], -item[1], item[2]))
    return [re.sub(rf"\b{own}\b", str(total), message, count=1) for _, total, message, own in ordered[:limit]]


def session_outcome(
    nodes: dict[str, NodeCapture],
    files: int,
    packets: int,
    dropped: int,
    findings: list[str],
    unindexed: int = 0,
) -> tuple[SessionStatus, str]:
    """The session's end and its verdict in words: ``completed`` when a node captured, else ``failed``; the
    nodes that did not capture are named with why. ``unindexed`` of the ``files`` are in S3 by their
    manifests but not in the index (counted as their manifests count them): the verdict says so, since the
    report and the findings do not cover them."""
    captured = [n for n in nodes.values() if n.status in CAPTURED_STATES]
    top = f"; top finding: {findings[0]}" if findings else ""
    late = f"; {unindexed} file(s) in S3 not indexed" if unindexed else ""
    verdict = (
        f"{len(captured)} of {len(nodes)} node(s) captured: "
        f"{files} file(s), {packets} packets, {dropped} dropped{late}{top}"
    )
    missed = [(n.node, (n.status, n.reason)) for n in nodes.values() if n.status not in CAPTURED_STATES]
    if missed:
        verdict += "; not captured: " + said_together(
            missed,
            lambda who, how: f"{who} {how[0].replace('_', ' ')}" + (f" ({how[1]})" if how[1] else ""),
        )
    return ("completed" if captured else "failed"), verdict


def said_together(outcomes: Iterable[tuple[str, Said]], say: Callable[[str, Said], str]) -> str:
    """``say(node, outcome)`` for each node, joined by ``; ``; more than NAMED_TOGETHER nodes sharing one
    outcome (a refused lock batch is 100 nodes with one reason) are said once, the first ones named:
    ``say("a, b, c and 97 more", outcome)``."""
    nodes: dict[Said, list[str]] = defaultdict(list)
    for node, outcome in outcomes:
        nodes[outcome].append(node)
    said: list[str] = []
    for outcome, names in nodes.items():
        if len(names) <= NAMED_TOGETHER:
            said += [say(name, outcome) for name in names]
        else:
            first = ", ".join(names[:NAMED_TOGETHER])
            said.append(say(f"{first} and {len(names) - NAMED_TOGETHER} more", outcome))
    return "; ".join(said)


def index_wait_verdict(until: datetime) -> str:
    """What a session says while its nodes are done and the sweep waits for the index (it no longer
    captures, and its counts are not final)."""
    return (
        "its nodes are done; waiting for the index to hold every file their manifests list in S3: it closes"
        f" once it does, or at {iso_utc(until)} with what is known"
    )
