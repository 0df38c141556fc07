"""What a node's kubelet says about a pod bound to it, and what the taint manager does to pods on it.

A pod bound with ``spec.nodeName`` never meets the scheduler: cordons (``spec.unschedulable``) and
NoSchedule taints do not apply to it. The kubelet admits it by its general predicates
(pkg/kubelet/lifecycle/predicate.go): the node's allocatable pods, cpu and memory against the pods it
already runs, the pod's node selector and affinity, and NoExecute taints only. A refused pod ends
``Failed`` with the predicate's reason and ``Pod was rejected: ...`` as its message. Pods already
running on a node that gains a NoExecute taint they do not tolerate are deleted by the taint manager
(after their ``tolerationSeconds``, when a matching toleration gives some).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from localcloud.kube.clock import parse_rfc3339
from localcloud.kube.events import record_event
from localcloud.kube.podstatus import set_condition
from localcloud.kube.quota import parse_quantity, pod_usage
from localcloud.kube.registry import DeleteOptions, Registry
from localcloud.kube.resources import PODS
from localcloud.kube.scheduling import selector_matches, tolerates
from localcloud.kube.store import Obj

REJECTED_PREFIX = "Pod was rejected: "
TAINT_EVICTION_REASON = "DeletionByTaintManager"
TAINT_EVICTION_MESSAGE = "Taint manager: deleting due to NoExecute taint"
#: Resource name, the reason the kubelet gives, and the unit it counts in (cpu in millicores).
_RESOURCES = (
    ("pods", "OutOfpods", Decimal(1)),
    ("cpu", "OutOfcpu", Decimal("0.001")),
    ("memory", "OutOfmemory", Decimal(1)),
)


@dataclass(frozen=True)
class Rejection:
    """The kubelet's refusal: the pod's status reason and message."""

    reason: str
    message: str


def requested(pod: Obj) -> dict[str, Decimal]:
    """What a pod takes of a node's allocatable: one pod, and its cpu and memory requests."""
    usage = pod_usage(pod)
    return {
        resource: Decimal(1) if resource == "pods" else usage.get(f"requests.{resource}", Decimal(0))
        for resource, _, _ in _RESOURCES
    }


def insufficient_resource(pod: Obj, node: Obj, used: Mapping[str, Decimal]) -> Rejection | None:
    """The first resource the node's allocatable cannot give the pod besides what its pods request."""
    allocatable = node.get("status", {}).get("allocatable") or {}
    asked = requested(pod)
    for resource, reason, unit in _RESOURCES:
        if resource not in allocatable:
            continue
        capacity = parse_quantity(allocatable[resource])
        requested_here = asked[resource]
        if resource != "pods" and not requested_here:
            continue
        in_use = used.get(resource, Decimal(0))
        if in_use + requested_here > capacity:
            numbers = (int(requested_here / unit), int(in_use / unit), int(capacity / unit))
            message = "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}".format(
                resource, *numbers
            )
            return Rejection(reason, message)
    return None


def untolerated_no_execute(pod_spec: Obj, node: Obj) -> Obj | None:
    """The first NoExecute taint of the node the pod has no toleration for."""
    tolerations = pod_spec.get("tolerations") or []
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") == "NoExecute" and not tolerates(tolerations, taint):
            return dict(taint)
    return None


def kubelet_admission(pod: Obj, node: Obj, used: Mapping[str, Decimal]) -> Rejection | None:
    """Whether the node's kubelet runs ``pod``, given what the pods it has admitted and not seen finish
    request (``NodeUsage.on``)."""
    found = insufficient_resource(pod, node, used)
    if found is None and not selector_matches(pod["spec"], node):
        found = Rejection(
            "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
        )
    if found is None and untolerated_no_execute(pod["spec"], node) is not None:
        found = Rejection(
            "TaintToleration",
            "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate",
        )
    return None if found is None else Rejection(found.reason, REJECTED_PREFIX + found.message)


def taint_eviction_due(pod_spec: Obj, node: Obj, noticed_at: float) -> float | None:
    """When the taint manager deletes a pod running on ``node``: now (0) for an untolerated NoExecute
    taint, after the shortest ``tolerationSeconds`` of the tolerations that match one, never (None)."""
    tolerations = pod_spec.get("tolerations") or []
    due: float | None = None
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates([t], taint)]
        if not matching:
            return 0.0
        limits = [float(t["tolerationSeconds"]) for t in matching if t.get("tolerationSeconds") is not None]
        if len(limits) < len(matching):
            continue  # one matching toleration has no limit: tolerated for ever
        added = parse_rfc3339(taint["timeAdded"]) if taint.get("timeAdded") else noticed_at
        at = added + max(0.0, min(limits))
        due = at if due is None else min(due, at)
    return due


@dataclass
class TaintEvictions:
    """When the taint manager first saw each running pod under a NoExecute taint (tolerationSeconds count
    from the taint's ``timeAdded``, else from then)."""

    noticed: dict[str, float] = field(default_factory=dict)

    def eviction_due(self, pod: Obj, node: Obj, now: float) -> bool:
        uid = pod["metadata"]["uid"]
        due = taint_eviction_due(pod["spec"], node, self.noticed.get(uid, now))
        if due is None:
            self.noticed.pop(uid, None)
            return False
        self.noticed.setdefault(uid, now)
        return now >= due


def active_on(node_name: str, pods: Iterable[Obj], admitted_uids: Container[str]) -> list[Obj]:
    """Pods the node's kubelet has admitted and not seen finish (what counts against its allocatable)."""
    return [
        pod
        for pod in pods
        if pod["spec"].get("nodeName") == node_name
        and pod["metadata"]["uid"] in admitted_uids
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


@dataclass
class NodeUsage:
    """What each node's admitted, unfinished pods request during one kubelet pass over ``pods``: summed
    once per node and kept current as the pass admits more, so admitting a pod weighs it against a sum,
    not against every pod the node runs again (a pass over a thousand pods on one node stays linear)."""

    pods: Sequence[Obj]
    _used: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def on(self, node_name: str, admitted_uids: Container[str]) -> dict[str, Decimal]:
        """The node's requested totals; the pods counted are those admitted before the node's first
        admission in this pass, plus those ``admission`` has admitted since."""
        if node_name not in self._used:
            total = {resource: Decimal(0) for resource, _, _ in _RESOURCES}
            for pod in active_on(node_name, self.pods, admitted_uids):
                for resource, amount in requested(pod).items():
                    total[resource] += amount
            self._used[node_name] = total
        return self._used[node_name]

    def admission(self, pod: Obj, node: Obj, admitted_uids: Container[str]) -> Rejection | None:
        """``kubelet_admission`` on the node's totals; an admitted pod counts from then on in this pass."""
        used = self.on(node["metadata"]["name"], admitted_uids)
        rejection = kubelet_admission(pod, node, used)
        if rejection is None:
            for resource, amount in requested(pod).items():
                used[resource] += amount
        return rejection


def reject(registry: Registry, pod: Obj, rejection: Rejection) -> None:
    """The kubelet's rejectPod: a Warning event with the predicate's message, then phase Failed."""
    record_event(
        registry, pod, "Warning", rejection.reason, rejection.message.removeprefix(REJECTED_PREFIX), "kubelet"
    )

    def change(obj: Obj) -> None:
        obj["status"] = {
            **{k: v for k, v in (obj.get("status") or {}).items() if k in ("conditions", "qosClass")},
            "phase": "Failed",
            "reason": rejection.reason,
            "message": rejection.message,
        }

    registry.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change)


def evict_for_taint(registry: Registry, pod: Obj, now: float) -> None:
    """The taint eviction controller: mark the pod as disrupted, say so, delete it gracefully."""
    meta = pod["metadata"]

    def change(obj: Obj) -> None:
        set_condition(obj, "DisruptionTarget", "True", now, TAINT_EVICTION_REASON, TAINT_EVICTION_MESSAGE)

    registry.mutate(PODS, meta["namespace"], meta["name"], change)
    message = f"Marking for deletion Pod {meta['namespace']}/{meta['name']}"
    record_event(registry, pod, "Normal", "TaintManagerEviction", message, "taint-eviction-controller")
    registry.delete(PODS, meta["namespace"], meta["name"], DeleteOptions())
