"""The doctor's quota check: would a ResourceQuota of the capture namespace admit one more capture pod?

As the quota admission plugin decides it (pkg/quota/v1/evaluator/core/pods.go): a quota counts a pod when
its scopes select it; a pod's usage is its containers' summed requests and limits; a quota on cpu or memory
demands every container set it; a pod that would take usage past a hard limit is refused.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity as _parse_quantity

from eks_capture_cli.checks import Check, Fact, Unfetched, Verdict, could_not_check


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("150m", "256Mi") as a number (the kubernetes client's parser)."""
    return Decimal(str(_parse_quantity(text)))  # type: ignore[no-untyped-call]


# What the quota plugin requires every container to set when a quota constrains it (pods.go's
# validationSet: cpu and memory only, "do not add more resources to this list").
MUST_SPECIFY = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def pod_usage(pod_spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """What one pod counts against a quota: itself, its containers' summed requests and limits."""
    usage: dict[str, Decimal] = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for container in pod_spec.get("containers") or []:
        for kind in ("requests", "limits"):
            for resource, amount in ((container.get("resources") or {}).get(kind) or {}).items():
                key = f"{kind}.{resource}"
                usage[key] = usage.get(key, Decimal(0)) + quantity(amount)
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if f"requests.{resource}" in usage:
            usage[resource] = usage[f"requests.{resource}"]
    return usage


def _unset(pod_spec: Mapping[str, Any], key: str) -> list[str]:
    """Containers that do not set what a quota constrains (``limits.cpu``; ``cpu`` means its request)."""
    kind, _, resource = key.rpartition(".")
    kind = kind or "requests"
    return [
        str(c.get("name"))
        for c in pod_spec.get("containers") or []
        if resource not in ((c.get("resources") or {}).get(kind) or {})
    ]


def applies(item: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> bool:
    """Whether a quota's scopes select a capture pod (it is never BestEffort, never Terminating: no
    activeDeadlineSeconds of its own, and has no priority class unless its spec names one)."""
    spec = item.get("spec") or {}
    scopes = set(spec.get("scopes") or [])
    expressions = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    priority = pod_spec.get("priorityClassName")
    if "BestEffort" in scopes or ("Terminating" in scopes and not pod_spec.get("activeDeadlineSeconds")):
        return False
    for expression in expressions:
        name, operator, values = (
            expression.get("scopeName"),
            expression.get("operator"),
            expression.get("values"),
        )
        if name in ("BestEffort", "Terminating") and operator == "Exists":
            return False
        if name == "PriorityClass" and not _selects_priority(operator, values or [], priority):
            return False
    return True


def _selects_priority(operator: str | None, values: list[str], priority: str | None) -> bool:
    if operator == "In":
        return priority in values
    if operator == "NotIn":
        return priority not in values
    if operator == "Exists":
        return priority is not None
    return priority is None  # DoesNotExist


def quota(namespace: str, item: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> Check:
    """Would this ResourceQuota admit one more capture pod (its hard minus used, and what it demands set)?"""
    quota_name = str((item.get("metadata") or {}).get("name"))
    name = f"quota {quota_name}"
    if not applies(item, pod_spec):
        return Check(name, Verdict.OK, "its scopes do not select capture pods")
    hard = {k: quantity(v) for k, v in ((item.get("spec") or {}).get("hard") or {}).items()}
    used = {k: quantity(v) for k, v in ((item.get("status") or {}).get("used") or {}).items()}
    asked = pod_usage(pod_spec)
    unset = {k: names for k in hard if k in MUST_SPECIFY and (names := _unset(pod_spec, k))}
    if unset:
        removal = [{"op": "remove", "path": f"/spec/hard/{k}"} for k in sorted(unset)]
        fix = _patch(namespace, quota_name, "json", removal)
        said = "; ".join(f"{k} for: {','.join(names)}" for k, names in sorted(unset.items()))
        return Check(name, Verdict.FAIL, f"demands what capture pods do not set (must specify {said})", fix)
    over = {
        k: used.get(k, Decimal(0)) + asked[k]
        for k in hard
        if k in asked and used.get(k, Decimal(0)) + asked[k] > hard[k]
    }
    if over:
        raised = {"spec": {"hard": {k: _quantity(v) for k, v in sorted(over.items())}}}
        fix = _patch(namespace, quota_name, "merge", raised)
        said = ", ".join(
            f"{k}: asks {_quantity(asked[k])}, used {_quantity(used.get(k, Decimal(0)))} of "
            f"{_quantity(hard[k])}"
            for k in sorted(over)
        )
        return Check(name, Verdict.FAIL, f"a capture pod would exceed it ({said})", fix)
    return Check(name, Verdict.OK, "room for a capture pod")


def _patch(namespace: str, quota_name: str, kind: str, patch: Any) -> str:
    quoted = shlex.quote(json.dumps(patch))
    return f"kubectl -n {namespace} patch resourcequota {quota_name} --type {kind} -p {quoted}"


def _quantity(value: Decimal) -> str:
    """A quantity as Kubernetes writes it: whole mebibytes in Mi, other whole numbers as they are, fractions
    in milli-units."""
    if value == value.to_integral_value():
        whole = int(value)
        return f"{whole // 2**20}Mi" if whole >= 2**20 and whole % 2**20 == 0 else str(whole)
    return f"{int((value * 1000).to_integral_value())}m"


def quotas(
    namespace: str, items: Fact[Sequence[Mapping[str, Any]]], pod_spec: Mapping[str, Any]
) -> list[Check]:
    """One line per quota of the namespace (one green line when there is none)."""
    if isinstance(items, Unfetched):
        return [could_not_check("quotas", items)]
    if not items:
        return [Check("quotas", Verdict.OK, f"no ResourceQuota in {namespace}")]
    return [quota(namespace, item, pod_spec) for item in items]
