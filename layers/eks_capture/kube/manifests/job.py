"""The capture Job for one node, as a plain batch/v1 dict (pure: no API calls, same input same output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eks_capture.ids import CaptureId
from eks_capture.kube.labels import (
    ANNOTATION_CLUSTER,
    ANNOTATION_EXPIRES_AT,
    ANNOTATION_IRSA_SKIP,
    ANNOTATION_REASON,
    capture_labels,
)
from eks_capture.kube.names import DNS1123_LABEL_MAX, fit_dns1123_label
from eks_capture.kube.nodes import NodeInfo
from eks_capture.settings import Settings
from eks_capture.times import iso_utc

CAPTURE_CONTAINER = "capture"
UPLOAD_CONTAINER = "upload"
SPOOL_VOLUME, SPOOL_DIR = "spool", "/spool"
TMP_VOLUME, TMP_DIR, TMP_SIZE = "tmp", "/tmp", "16Mi"
AGENT_COMMAND = ("python", "-m", "eks_capture_agent")
UPLOADER_UID = 65532
ROOT_UID = 0
CAPTURE_CAPABILITIES = ("NET_RAW", "SETGID")  # SETGID: tcpdump -Z root resets its groups
TERMINATION_MARGIN_SECONDS = 15
MAX_REASON_ANNOTATION = 1024
CAPTURE_RESOURCES = (("100m", "64Mi"), ("1", "256Mi"))  # (requests, limits) as (cpu, memory)
UPLOAD_RESOURCES = (("50m", "128Mi"), ("500m", "256Mi"))


@dataclass(frozen=True)
class TcpdumpOptions:
    """What the capture container's tcpdump is told: for how long, how much of each packet, which packets
    (``filter`` None: all). A capture's full options (captures.options) extend these with how it chose
    them; the manifests read only these."""

    duration_seconds: int
    snaplen: int
    filter: str | None = None


@dataclass(frozen=True)
class CaptureSpec:
    """One capture as the manifests need it: identity, tcpdump's options, why, and when it started (UTC)."""

    capture_id: CaptureId
    cluster: str
    options: TcpdumpOptions
    reason: str
    started_at: datetime


def job_name(capture_id: CaptureId, node_name: str) -> str:
    """The Job's name: unique per (capture, node), stable across retries (a retry gets 409), <= 63 chars."""
    prefix = capture_id.lower()  # Job names are DNS-1123: the id's T and Z in lower case
    return f"{prefix}-{fit_dns1123_label(node_name, DNS1123_LABEL_MAX - len(prefix) - 1)}"


def expires_at(spec: CaptureSpec, settings: Settings) -> datetime:
    """When the capture must be over: start + duration + upload grace."""
    return spec.started_at + timedelta(seconds=spec.options.duration_seconds + settings.upload_grace_seconds)


def s3_prefix(cluster: str, capture_id: CaptureId, node_name: str) -> str:
    """The S3 key prefix of one node's files (docs/design.md)."""
    return f"captures/{cluster}/{capture_id}/{node_name}/"


def _env(spec: CaptureSpec, node: NodeInfo) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "CAPTURE_ID", "value": spec.capture_id},
        {"name": "CLUSTER_NAME", "value": spec.cluster},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if node.instance_id:
        env.append({"name": "INSTANCE_ID", "value": node.instance_id})
    return env


def container_resources(sizes: tuple[tuple[str, str], tuple[str, str]]) -> dict[str, dict[str, str]]:
    (cpu_request, memory_request), (cpu_limit, memory_limit) = sizes
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def spool_mounts() -> list[dict[str, Any]]:
    return [{"name": SPOOL_VOLUME, "mountPath": SPOOL_DIR}, {"name": TMP_VOLUME, "mountPath": TMP_DIR}]


def capture_container(spec: CaptureSpec, node: NodeInfo, settings: Settings) -> dict[str, Any]:
    options = spec.options
    args = [
        "capture",
        "--spool", SPOOL_DIR,
        "--interface", "any",
        "--duration", str(options.duration_seconds),
        "--snaplen", str(options.snaplen),
        "--rotate-seconds", str(settings.rotate_seconds),
        "--rotate-megabytes", str(settings.rotate_megabytes),
        "--budget-bytes", str(settings.spool_budget_bytes),  # no file starts without room in the spool
    ]  # fmt: skip
    if options.filter:
        args += ["--filter", options.filter]
    return {
        "name": CAPTURE_CONTAINER,
        "image": settings.capture_image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(AGENT_COMMAND),
        "args": args,
        "env": _env(spec, node),
        "resources": container_resources(CAPTURE_RESOURCES),
        "volumeMounts": spool_mounts(),
        "securityContext": {
            # Root without privilege: a capture socket needs CAP_NET_RAW, which a non-root process only gets
            # from file capabilities, and those need allowPrivilegeEscalation (capture-image/README.md).
            "runAsUser": ROOT_UID,
            "runAsNonRoot": False,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": list(CAPTURE_CAPABILITIES)},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def upload_container(spec: CaptureSpec, node: NodeInfo, settings: Settings) -> dict[str, Any]:
    env = _env(spec, node)
    if settings.aws_region:
        env += [
            {"name": "AWS_REGION", "value": settings.aws_region},
            {"name": "AWS_DEFAULT_REGION", "value": settings.aws_region},
        ]
    args = [
        "upload",
        "--spool", SPOOL_DIR,
        "--bucket", settings.capture_bucket,
        "--prefix", s3_prefix(spec.cluster, spec.capture_id, node.name),
        "--budget-bytes", str(settings.spool_budget_bytes),
        "--grace-seconds", str(settings.upload_grace_seconds),
    ]  # fmt: skip
    return {
        "name": UPLOAD_CONTAINER,
        "image": settings.capture_image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(AGENT_COMMAND),
        "args": args,
        "env": env,
        "resources": container_resources(UPLOAD_RESOURCES),
        "volumeMounts": spool_mounts(),
        "securityContext": {
            "runAsUser": UPLOADER_UID,
            "runAsGroup": UPLOADER_UID,
            "runAsNonRoot": True,
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def capture_job(spec: CaptureSpec, node: NodeInfo, settings: Settings) -> dict[str, Any]:
    """The batch/v1 Job that captures on ``node``: pinned there, tolerating its taints, time-boxed three ways
    (agent duration, activeDeadlineSeconds, expires-at annotation)."""
    labels = capture_labels(spec.capture_id, node.name)
    annotations = {
        ANNOTATION_CLUSTER: spec.cluster,
        ANNOTATION_EXPIRES_AT: iso_utc(expires_at(spec, settings)),
        ANNOTATION_REASON: spec.reason[:MAX_REASON_ANNOTATION],
    }
    grace = settings.upload_grace_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.capture_id, node.name),
            "namespace": settings.capture_namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.options.duration_seconds + grace,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**annotations, ANNOTATION_IRSA_SKIP: CAPTURE_CONTAINER},
                },
                "spec": {
                    "nodeName": node.name,
                    "restartPolicy": "Never",
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "serviceAccountName": settings.capture_service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": grace + TERMINATION_MARGIN_SECONDS,
                    "tolerations": [
                        {"key": taint.key, "operator": "Exists", "effect": taint.effect}
                        for taint in node.taints
                    ],
                    "securityContext": {
                        "fsGroup": UPLOADER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        capture_container(spec, node, settings),
                        upload_container(spec, node, settings),
                    ],
                    "volumes": [
                        {"name": SPOOL_VOLUME, "emptyDir": {"sizeLimit": settings.spool_size_limit}},
                        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
                    ],
                },
            },
        },
    }
