"""What an operator applies to each cluster once: the capture namespace, RBAC and service account.

Built from the stack's parameters (CaptureNamespace, CaptureServiceAccount) and the Kubernetes groups of
the stack's access entries, so the names cannot drift from the template; deploy/kubernetes/ holds these
objects for the template's defaults (a test compares them). ``eks-capture manifests`` prints them.

One identity, one job: the trigger's group may read the cluster (targets, pod selectors, services and
their endpoint slices, context) and create, replace and delete capture Jobs and the recorder DaemonSet in
the capture namespace, and annotate pods there (the recorder's window); the teardown's group may only
read and delete Jobs and pods there, list their events (why a Job got no pod) and read the recorder
DaemonSet. Neither may touch secrets, RBAC or anything outside the
capture namespace but reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
import yaml

from eks_capture_cli.stacks import StackOption, stack_parameters

TRIGGER_GROUP = "eks-capture-trigger"
TEARDOWN_GROUP = "eks-capture-teardown"
LABELS = {"app.kubernetes.io/name": "eks-capture"}
RBAC_API = "rbac.authorization.k8s.io"
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "privileged",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "baseline",
    "pod-security.kubernetes.io/audit-version": "latest",
    "pod-security.kubernetes.io/warn": "baseline",
    "pod-security.kubernetes.io/warn-version": "latest",
}


@dataclass(frozen=True)
class ClusterNames:
    """The names the stack and the cluster must agree on (the template's defaults by default)."""

    namespace: str = "eks-capture"
    service_account: str = "eks-capture-uploader"
    trigger_group: str = TRIGGER_GROUP
    teardown_group: str = TEARDOWN_GROUP


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def _metadata(name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(LABELS)
    return metadata


def _role(kind: str, name: str, namespace: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": kind,
        "metadata": _metadata(name, namespace),
        "rules": rules,
    }


def _binding(kind: str, name: str, namespace: str | None, group: str) -> dict[str, Any]:
    role_kind = "ClusterRole" if kind == "ClusterRoleBinding" else "Role"
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": kind,
        "metadata": _metadata(name, namespace),
        "roleRef": {"apiGroup": RBAC_API, "kind": role_kind, "name": name},
        "subjects": [{"apiGroup": RBAC_API, "kind": "Group", "name": group}],
    }


def namespace_manifest(names: ClusterNames) -> dict[str, Any]:
    """The capture namespace: Pod Security enforces privileged here only (hostNetwork + NET_RAW)."""
    metadata = _metadata(names.namespace)
    metadata["labels"].update(POD_SECURITY)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def rbac_manifests(names: ClusterNames) -> list[dict[str, Any]]:
    """The trigger's and the teardown's RBAC, each bound to its own group."""
    ns = names.namespace
    reader, trigger, teardown = "eks-capture-cluster-reader", "eks-capture-trigger", "eks-capture-teardown"
    return [
        _role(
            "ClusterRole",
            reader,
            None,
            [
                _rule("", ["nodes", "pods"], ["get", "list"]),
                _rule("", ["services"], ["get", "list"]),
                _rule("discovery.k8s.io", ["endpointslices"], ["list"]),
            ],
        ),
        _binding("ClusterRoleBinding", reader, None, names.trigger_group),
        _role(
            "Role",
            trigger,
            ns,
            [
                _rule("batch", ["jobs"], ["get", "list", "create", "delete"]),
                _rule("", ["pods"], ["get", "list", "patch"]),
                _rule("apps", ["daemonsets"], ["get", "list", "create", "update", "delete"]),
            ],
        ),
        _binding("RoleBinding", trigger, ns, names.trigger_group),
        _role(
            "Role",
            teardown,
            ns,
            [
                _rule("batch", ["jobs"], ["get", "list", "delete"]),
                _rule("", ["pods"], ["get", "list", "delete"]),
                _rule("", ["events"], ["list"]),
                _rule("apps", ["daemonsets"], ["get", "list"]),
            ],
        ),
        _binding("RoleBinding", teardown, ns, names.teardown_group),
    ]


def service_account_manifest(names: ClusterNames) -> dict[str, Any]:
    """The capture pods' identity; they mount no API token (they never call the API)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(names.service_account, names.namespace),
        "automountServiceAccountToken": False,
    }


def cluster_manifests(names: ClusterNames) -> list[dict[str, Any]]:
    """Every object, in the order kubectl applies deploy/kubernetes/ (namespace, rbac, service account)."""
    return [namespace_manifest(names), *rbac_manifests(names), service_account_manifest(names)]


def render(names: ClusterNames) -> str:
    """The objects as one YAML stream for ``kubectl apply -f -``."""
    header = (
        f"# eks-capture: namespace {names.namespace}, service account {names.service_account}, "
        f"groups {names.trigger_group} (trigger) and {names.teardown_group} (teardown)\n"
    )
    return header + "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in cluster_manifests(names))


def stack_names(parameters: dict[str, str]) -> ClusterNames:
    """The names for a stack deployed with ``parameters`` (its defaults where one is not given)."""
    defaults = ClusterNames()
    return ClusterNames(
        namespace=parameters.get("CaptureNamespace") or defaults.namespace,
        service_account=parameters.get("CaptureServiceAccount") or defaults.service_account,
    )


def manifests(
    stack: StackOption = None,
    namespace: Annotated[
        str | None, typer.Option(help="CaptureNamespace (default: --stack's, else eks-capture).")
    ] = None,
    service_account: Annotated[
        str | None,
        typer.Option(help="CaptureServiceAccount (default: --stack's, else eks-capture-uploader)."),
    ] = None,
) -> None:
    """Print the namespace, RBAC and service account a stack needs in each cluster, for kubectl apply.

    The names are the stack's parameters (CaptureNamespace, CaptureServiceAccount) and the groups its
    access entries give the trigger and the teardown, so nothing is edited by hand.

    Example: eks-capture manifests --stack eks-capture | kubectl apply -f -
    """
    parameters = stack_parameters(stack) if stack else {}
    if namespace:
        parameters["CaptureNamespace"] = namespace
    if service_account:
        parameters["CaptureServiceAccount"] = service_account
    typer.echo(render(stack_names(parameters)), nl=False)
