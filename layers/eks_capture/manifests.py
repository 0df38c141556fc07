"""The capture Job for one node, as a plain batch/v1 dict (pure: no API calls, same input same output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eks_capture.ids import CaptureId
from eks_capture.kube_names import DNS1123_LABEL_MAX, fit_dns1123_label, fit_label_value
from eks_capture.nodes import NodeInfo
from eks_capture.options import CaptureOptions
from eks_capture.selectors import LabelSelector
from eks_capture.settings import Settings

APP_NAME = "eks-capture"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_CAPTURE_ID = "eks-capture.io/capture-id"
LABEL_NODE = "eks-capture.io/node"
ANNOTATION_CLUSTER = "eks-capture.io/cluster"
ANNOTATION_EXPIRES_AT = "eks-capture.io/expires-at"
ANNOTATION_REASON = "eks-capture.io/reason"
# The IRSA webhook leaves these containers without AWS credentials (EKS Pod Identity ignores it).
ANNOTATION_IRSA_SKIP = "eks.amazonaws.com/skip-containers"

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
class CaptureSpec:
    """One capture as the manifests need it: identity, options, why, and when it started (UTC)."""

    capture_id: CaptureId
    cluster: str
    options: CaptureOptions
    reason: str
    started_at: datetime


def job_name(capture_id: CaptureId, node_name: str) -> str:
    """The Job's name: unique per (capture, node), stable across retries (a retry gets 409), <= 63 chars."""
    prefix = capture_id.lower()  # Job names are DNS-1123: the id's T and Z in lower case
    return f"{prefix}-{fit_dns1123_label(node_name, DNS1123_LABEL_MAX - len(prefix) - 1)}"


def capture_labels(capture_id: CaptureId, node_name: str) -> dict[str, str]:
    """The labels of a capture's Job and pod (docs/design.md)."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_COMPONENT: "capture",
        LABEL_CAPTURE_ID: capture_id,
        LABEL_NODE: fit_label_value(node_name),
    }


def capture_selector(capture_id: CaptureId) -> str:
    """The label selector of every Job and pod of one capture (to stop or watch it)."""
    return f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}=capture,{LABEL_CAPTURE_ID}={capture_id}"


def expires_at(spec: CaptureSpec, settings: Settings) -> datetime:
    """When the capture must be over: start + duration + upload grace."""
    return spec.started_at + timedelta(seconds=spec.options.duration_seconds + settings.upload_grace_seconds)


def s3_prefix(cluster: str, capture_id: CaptureId, node_name: str) -> str:
    """The S3 key prefix of one node's files (docs/design.md)."""
    return f"captures/{cluster}/{capture_id}/{node_name}/"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(spec: CaptureSpec, node: NodeInfo) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "CAPTURE_ID", "value": spec.capture_id},
        {"name": "CLUSTER_NAME", "value": spec.cluster},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if node.instance_id:
        env.append({"name": "INSTANCE_ID", "value": node.instance_id})
    return env


def _resources(sizes: tuple[tuple[str, str], tuple[str, str]]) -> dict[str, dict[str, str]]:
    (cpu_request, memory_request), (cpu_limit, memory_limit) = sizes
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def _mounts() -> list[dict[str, Any]]:
    return [{"name": SPOOL_VOLUME, "mountPath": SPOOL_DIR}, {"name": TMP_VOLUME, "mountPath": TMP_DIR}]


def _capture_container(spec: CaptureSpec, node: NodeInfo, settings: Settings) -> dict[str, Any]:
    options = spec.options
    args = [
        "capture",
        "--spool", SPOOL_DIR,
        "--interface", "any",
        "--duration", str(options.duration_seconds),
        "--snaplen", str(options.snaplen),
        "--rotate-seconds", str(settings.rotate_seconds),
        "--rotate-megabytes", str(settings.rotate_megabytes),
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
        "resources": _resources(CAPTURE_RESOURCES),
        "volumeMounts": _mounts(),
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


def _upload_container(spec: CaptureSpec, node: NodeInfo, settings: Settings) -> dict[str, Any]:
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
        "resources": _resources(UPLOAD_RESOURCES),
        "volumeMounts": _mounts(),
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
        ANNOTATION_EXPIRES_AT: _iso(expires_at(spec, settings)),
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
                        _capture_container(spec, node, settings),
                        _upload_container(spec, node, settings),
                    ],
                    "volumes": [
                        {"name": SPOOL_VOLUME, "emptyDir": {"sizeLimit": settings.spool_size_limit}},
                        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
                    ],
                },
            },
        },
    }


# --- the flight recorder (issue 10) ---------------------------------------------------------------

RECORDER_NAME = "eks-capture-recorder"
RECORD_CONTAINER = "record"
RECORDER_CONTAINER = "recorder"
PODINFO_VOLUME, PODINFO_DIR, PODINFO_FILE = "podinfo", "/etc/podinfo", "annotations"
ANNOTATION_WINDOW_REQUEST = "eks-capture.io/window-request"
ANNOTATION_RING_SECONDS = "eks-capture.io/ring-seconds"
RECORDER_ROTATE_SECONDS = 10
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


def recorder_labels() -> dict[str, str]:
    """The labels of the recorder DaemonSet and its pods (docs/design.md)."""
    return {LABEL_NAME: APP_NAME, LABEL_COMPONENT: "recorder"}


def recorder_selector() -> str:
    """The label selector of the recorder's pods."""
    return f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}=recorder"


def recorder_spool_size(spec: RecorderSpec) -> str:
    """The emptyDir sizeLimit: the byte budget plus a tenth (at least 64 MiB) for JSON and rounding."""
    return f"{spec.budget_megabytes + max(64, spec.budget_megabytes // 10)}Mi"


def _node_affinity(selector: LabelSelector) -> dict[str, Any]:
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(selector.match_labels.items())
    ]
    expressions += [
        {"key": term.key, "operator": term.operator, **({"values": list(term.values)} if term.values else {})}
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
    record_args = [
        "record",
        "--spool", SPOOL_DIR,
        "--interface", "any",
        "--snaplen", str(spec.snaplen),
        "--rotate-seconds", str(RECORDER_ROTATE_SECONDS),
        "--rotate-megabytes", str(rotate_megabytes),
    ]  # fmt: skip
    if spec.filter:
        record_args += ["--filter", spec.filter]
    recorder_args = [
        "recorder",
        "--spool", SPOOL_DIR,
        "--bucket", settings.capture_bucket,
        "--request-file", f"{PODINFO_DIR}/{PODINFO_FILE}",
        "--ring-minutes", str(spec.ring_minutes),
        "--budget-bytes", str(spec.budget_megabytes * (1 << 20)),
        "--grace-seconds", str(settings.upload_grace_seconds),
    ]  # fmt: skip
    record = {
        **_capture_container(_placeholder_spec(spec), NodeInfo("recorder", None, None), settings),
        "name": RECORD_CONTAINER,
        "args": record_args,
        "env": _recorder_env(spec, settings, with_region=False),
        "resources": _resources(RECORDER_RESOURCES),
    }
    recorder = {
        **_upload_container(_placeholder_spec(spec), NodeInfo("recorder", None, None), settings),
        "name": RECORDER_CONTAINER,
        "args": recorder_args,
        "env": _recorder_env(spec, settings, with_region=True),
        "resources": _resources(RECORDER_UPLOAD_RESOURCES),
        "volumeMounts": [*_mounts(), {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True}],
    }
    return [record, recorder]


def _placeholder_spec(spec: RecorderSpec) -> CaptureSpec:
    """The capture containers' shared fields (image, security context) come from a capture-shaped spec."""
    options = CaptureOptions(duration_seconds=1, snaplen=spec.snaplen, filter=spec.filter)
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
    if spec.node_selector is not None:
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
