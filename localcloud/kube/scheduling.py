"""Which nodes a pod may run on: node selector, required node affinity, taints and tolerations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localcloud.kube.selectors import Requirement, labels_match

Obj = dict[str, Any]
_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def node_ready(node: Obj) -> bool:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def effective_taints(node: Obj) -> list[Obj]:
    """The node's taints plus those the node lifecycle controller adds (not-ready, unschedulable)."""
    taints = list(node.get("spec", {}).get("taints") or [])
    if not node_ready(node):
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    if node.get("spec", {}).get("unschedulable"):
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    return taints


def tolerates(tolerations: Sequence[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def untolerated_taint(pod_spec: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint the pod does not tolerate, if any."""
    tolerations = pod_spec.get("tolerations") or []
    for taint in effective_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    expressions = tuple(
        Requirement(e["key"], _OPERATORS[e["operator"]], frozenset(e.get("values") or ()))
        for e in term.get("matchExpressions") or []
    )
    fields = tuple(
        Requirement(f["key"], _OPERATORS[f["operator"]], frozenset(f.get("values") or ()))
        for f in term.get("matchFields") or []
    )
    return labels_match(expressions, labels) and labels_match(
        fields, {"metadata.name": node["metadata"]["name"]}
    )


def selector_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (
        (pod_spec.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required:
        return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])
    return True


def fits(pod_spec: Obj, node: Obj) -> bool:
    return selector_matches(pod_spec, node) and untolerated_taint(pod_spec, node) is None


def unschedulable_message(pod_spec: Obj, nodes: Sequence[Obj]) -> str:
    """The scheduler's summary: ``0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, ...``."""
    if not nodes:
        return "0/0 nodes are available: no nodes available to schedule pods."
    reasons: dict[str, int] = {}
    for node in nodes:
        if not selector_matches(pod_spec, node):
            reason = "node(s) didn't match Pod's node affinity/selector"
        else:
            taint = untolerated_taint(pod_spec, node)
            if taint is None:
                continue
            value = f": {taint['value']}" if taint.get("value") else ""
            reason = f"node(s) had untolerated taint {{{taint['key']}{value}}}"
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return (
        f"0/{len(nodes)} nodes are available: {parts}. preemption: 0/{len(nodes)} nodes are available: "
        f"{len(nodes)} Preemption is not helpful for scheduling."
    )
