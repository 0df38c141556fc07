"""Every label and annotation the product puts on cluster objects, and the selectors built from them.

One place, so the manifests, the cluster calls, the reaper and the recorder agree (docs/design.md).
"""

from __future__ import annotations

from eks_capture.ids import CaptureId
from eks_capture.kube.names import fit_label_value

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

ANNOTATION_WINDOW_REQUEST = "eks-capture.io/window-request"
ANNOTATION_RING_SECONDS = "eks-capture.io/ring-seconds"

CAPTURE_SELECTOR = f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}=capture"
RECORDER_SELECTOR = f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}=recorder"


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
    return f"{CAPTURE_SELECTOR},{LABEL_CAPTURE_ID}={capture_id}"


def recorder_labels() -> dict[str, str]:
    """The labels of the recorder DaemonSet and its pods (docs/design.md)."""
    return {LABEL_NAME: APP_NAME, LABEL_COMPONENT: "recorder"}


def recorder_selector() -> str:
    """The label selector of the recorder's pods."""
    return RECORDER_SELECTOR
