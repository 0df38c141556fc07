"""The recorder DaemonSet, as a plain apps/v1 dict (pure: no API calls, same input same output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eks_capture.ids import CaptureId
from eks_capture.kube.labels import (
    ANNOTATION_CLUSTER,
    ANNOTATION_IRSA_SKIP,
    ANNOTATION_REASON,
    ANNOTATION_RING_SECONDS,
    recorder_labels,
)
from eks_capture.kube.manifests.job import (
    MAX_REASON_ANNOTATION,
    SPOOL_DIR,
    SPOOL_VOLUME,
    TERMINATION_MARGIN_SECONDS,
    TMP_SIZE,
    TMP_VOLUME,
    UPLOADER_UID,
    CaptureSpec,
    TcpdumpOptions,
    capture_container,
    container_resources,
    spool_mounts,
    upload_container,
)
from eks_capture.kube.nodes import COMPUTE_TYPE_LABEL, FARGATE, LINUX, OS_LABEL, NodeInfo
from eks_capture.kube.selectors import LabelSelector
from eks_capture.settings import Settings

RECORDER_NAME = "eks-capture-recorder"
RECORD_CONTAINER = "record"
RECORDER_CONTAINER = "recorder"
PODINFO_VOLUME, PODINFO_DIR, PODINFO_FILE = "podinfo", "/etc/podinfo", "annotations"
RECORDER_FILES_IN_BUDGET = 16  # the budget keeps room for two open files: files are a 16th of it
RECORDER_RESOURCES = (("50m", "64Mi"), ("500m", "256Mi"))
RECORDER_UPLOAD_RESOURCES = (("20m", "96Mi"), ("500m", "256Mi"))


@dataclass(frozen=True)
class RecorderSpec:
    """The recorder as asked: where (a node selector, all nodes when None), what, and how much to keep."""

    cluster: str
    node_selector: LabelSelector | None
    filter: str | None
    snaplen: int
    ring_minutes: int
    budget_megabytes: int
    reason: str


def recorder_spool_size(spec: RecorderSpec) -> str:
    """The emptyDir sizeLimit: the byte budget plus a tenth (at least 64 MiB) for JSON and rounding."""
    return f"{spec.budget_megabytes + max(64, spec.budget_megabytes // 10)}Mi"


#: Where a recorder pod can run whatever the selector: Linux, not Fargate (as NodeInfo.cannot_capture).
CAPTURABLE_NODES = (
    {"key": OS_LABEL, "operator": "In", "values": [LINUX]},
    {"key": COMPUTE_TYPE_LABEL, "operator": "NotIn", "values": [FARGATE]},
)


def _node_affinity(selector: LabelSelector | None) -> dict[str, Any]:
    expressions = [dict(expression) for expression in CAPTURABLE_NODES]
    if selector is not None:
        expressions += [
            {"key": key, "operator": "In", "values": [value]}
            for key, value in sorted(selector.match_labels.items())
        ]
        expressions += [
            {
                "key": term.key,
                "operator": term.operator,
                **({"values": list(term.values)} if term.values else {}),
            }
            for term in selector.match_expressions
        ]
    term = {"matchExpressions": expressions}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _recorder_env(spec: RecorderSpec, settings: Settings, with_region: bool) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "CLUSTER_NAME", "value": spec.cluster},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if with_region and settings.aws_region:
        env += [
            {"name": "AWS_REGION", "value": settings.aws_region},
            {"name": "AWS_DEFAULT_REGION", "value": settings.aws_region},
        ]
    return env


def _recorder_containers(spec: RecorderSpec, settings: Settings) -> list[dict[str, Any]]:
    rotate_megabytes = max(1, spec.budget_megabytes * (1 << 20) // 1_000_000 // RECORDER_FILES_IN_BUDGET)
    budget_bytes = str(spec.budget_megabytes * (1 << 20))
    record_args = [
        "record",
        "--spool", SPOOL_DIR,
        "--interface", "any",
        "--snaplen", str(spec.snaplen),
        "--rotate-seconds", str(settings.recorder_rotate_seconds),
        "--rotate-megabytes", str(rotate_megabytes),
        "--budget-bytes", budget_bytes,  # no file starts without room in the ring
    ]  # fmt: skip
    if spec.filter:
        record_args += ["--filter", spec.filter]
    recorder_args = [
        "recorder",
        "--spool", SPOOL_DIR,
        "--bucket", settings.capture_bucket,
        "--request-file", f"{PODINFO_DIR}/{PODINFO_FILE}",
        "--ring-minutes", str(spec.ring_minutes),
        "--budget-bytes", budget_bytes,
        "--grace-seconds", str(settings.upload_grace_seconds),
    ]  # fmt: skip
    record = {
        **capture_container(_placeholder_spec(spec), NodeInfo("recorder", None, None), settings),
        "name": RECORD_CONTAINER,
        "args": record_args,
        "env": _recorder_env(spec, settings, with_region=False),
        "resources": container_resources(RECORDER_RESOURCES),
    }
    recorder = {
        **upload_container(_placeholder_spec(spec), NodeInfo("recorder", None, None), settings),
        "name": RECORDER_CONTAINER,
        "args": recorder_args,
        "env": _recorder_env(spec, settings, with_region=True),
        "resources": container_resources(RECORDER_UPLOAD_RESOURCES),
        "volumeMounts": [
            *spool_mounts(),
            {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True},
        ],
    }
    return [record, recorder]


def _placeholder_spec(spec: RecorderSpec) -> CaptureSpec:
    """The capture containers' shared fields (image, security context) come from a capture-shaped spec."""
    options = TcpdumpOptions(duration_seconds=1, snaplen=spec.snaplen, filter=spec.filter)
    return CaptureSpec(CaptureId(""), spec.cluster, options, spec.reason, datetime(1970, 1, 1, tzinfo=UTC))


def recorder_daemonset(spec: RecorderSpec, settings: Settings) -> dict[str, Any]:
    """The apps/v1 DaemonSet of the recorder: one pod per selected node, a ring on a sizeLimit'd emptyDir.

    Its ephemeral-storage request equals the emptyDir's limit, so the scheduler reserves the disk and the
    recorder cannot push a node into disk pressure (which would evict other pods); it has no priority
    class, so it never preempts anything either.
    """
    labels = recorder_labels()
    ring_seconds = str(spec.ring_minutes * 60)
    annotations = {ANNOTATION_CLUSTER: spec.cluster, ANNOTATION_REASON: spec.reason[:MAX_REASON_ANNOTATION]}
    size = recorder_spool_size(spec)
    pod: dict[str, Any] = {
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "serviceAccountName": settings.capture_service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.upload_grace_seconds + TERMINATION_MARGIN_SECONDS,
        "tolerations": [{"operator": "Exists"}],
        "securityContext": {"fsGroup": UPLOADER_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": _recorder_containers(spec, settings),
        "volumes": [
            {"name": SPOOL_VOLUME, "emptyDir": {"sizeLimit": size}},
            {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
            {
                "name": PODINFO_VOLUME,
                "downwardAPI": {
                    "items": [{"path": PODINFO_FILE, "fieldRef": {"fieldPath": "metadata.annotations"}}]
                },
            },
        ],
    }
    pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] = size
    pod["containers"][0]["resources"]["limits"]["ephemeral-storage"] = size
    pod["affinity"] = _node_affinity(spec.node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": RECORDER_NAME,
            "namespace": settings.capture_namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        **annotations,
                        ANNOTATION_RING_SECONDS: ring_seconds,
                        ANNOTATION_IRSA_SKIP: RECORD_CONTAINER,
                    },
                },
                "spec": pod,
            },
        },
    }
