"""Snapshots of Kubernetes nodes and pods as frozen values, read from the API's JSON form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"
FARGATE = "fargate"
OS_LABEL = "kubernetes.io/os"
LINUX = "linux"
ZONE_LABEL = "topology.kubernetes.io/zone"
_PROVIDER_ID = re.compile(r"^aws:///(?P<zone>[^/]*)/(?P<instance>i-[0-9a-f]+)$")


def parse_provider_id(provider_id: str | None) -> tuple[str | None, str | None]:
    """(zone, instance id) from an EKS node's ``spec.providerID`` (``aws:///us-west-2a/i-0abc...``)."""
    match = _PROVIDER_ID.match(provider_id or "")
    if not match:
        return None, None
    return match.group("zone") or None, match.group("instance")


@dataclass(frozen=True)
class Taint:
    """A node taint; the capture pod tolerates each one of its node."""

    key: str
    effect: str
    value: str | None = None


@dataclass(frozen=True)
class NodeAddress:
    """One of a node's addresses (InternalIP, ExternalIP, Hostname, ...)."""

    type: str
    address: str


@dataclass(frozen=True)
class NodeInfo:
    """What targeting needs to know of a node; ``asg_name``: the Auto Scaling group EC2 tags its instance
    with, when the trigger looked it up (for an alarm on AutoScalingGroupName)."""

    name: str
    instance_id: str | None = None
    zone: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    addresses: tuple[NodeAddress, ...] = ()
    asg_name: str | None = None

    @property
    def cannot_capture(self) -> str | None:
        """Why a capture pod (hostNetwork, NET_RAW, a Linux image) cannot run on this node, if it cannot."""
        if self.labels.get(COMPUTE_TYPE_LABEL) == FARGATE:
            return f"Fargate ({COMPUTE_TYPE_LABEL}={FARGATE}): no hostNetwork pods, so no capture"
        system = self.labels.get(OS_LABEL, LINUX)
        if system != LINUX:
            return f"not Linux ({OS_LABEL}={system}): the capture agent is a Linux image"
        return None

    @classmethod
    def from_kubernetes(cls, node: Mapping[str, Any], *, asg_name: str | None = None) -> NodeInfo:
        """A NodeInfo from a Node in the API's JSON form (as ``sanitize_for_serialization`` gives)."""
        metadata = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        labels = dict(metadata.get("labels") or {})
        zone, instance_id = parse_provider_id(spec.get("providerID"))
        conditions = status.get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return cls(
            name=str(metadata["name"]),
            instance_id=instance_id,
            zone=zone or labels.get(ZONE_LABEL),
            labels=labels,
            taints=tuple(
                Taint(key=str(t["key"]), effect=str(t["effect"]), value=t.get("value"))
                for t in spec.get("taints") or []
            ),
            ready=ready,
            addresses=tuple(
                NodeAddress(type=str(a["type"]), address=str(a["address"]))
                for a in status.get("addresses") or []
            ),
            asg_name=asg_name,
        )


@dataclass(frozen=True)
class PodInfo:
    """What targeting needs to know of a pod; ``workload`` is its Deployment (not ReplicaSet) or owner."""

    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    node_name: str | None = None
    workload: str | None = None

    @classmethod
    def from_kubernetes(cls, pod: Mapping[str, Any]) -> PodInfo:
        """A PodInfo from a Pod in the API's JSON form."""
        metadata = pod.get("metadata") or {}
        labels = dict(metadata.get("labels") or {})
        return cls(
            name=str(metadata["name"]),
            namespace=str(metadata.get("namespace") or "default"),
            labels=labels,
            node_name=(pod.get("spec") or {}).get("nodeName"),
            workload=_workload(metadata.get("ownerReferences") or [], labels),
        )


def _workload(owners: list[Mapping[str, Any]], labels: Mapping[str, str]) -> str | None:
    """The workload name Container Insights reports as PodName: a ReplicaSet's name less its template hash."""
    controller = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if controller is None:
        return None
    name = str(controller.get("name", ""))
    template_hash = labels.get("pod-template-hash")
    if controller.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return name.removesuffix(f"-{template_hash}")
    return name or None
