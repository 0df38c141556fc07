"""Pieces of pod status the kubelet and scheduler write: phase, node address, conditions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from localcloud.kube.clock import rfc3339

Obj = dict[str, Any]


def pod_phase(policy: str, statuses: Iterable[Obj], started: bool) -> str:
    """The pod phase its containers' states give under ``policy`` (as the kubelet computes it)."""
    states = [s.get("state", {}) for s in statuses]
    if any("waiting" in s for s in states) or not started:
        return "Pending"
    if all("terminated" in s for s in states):
        codes = [s["terminated"]["exitCode"] for s in states]
        if policy == "Never" or (policy == "OnFailure" and not any(codes)):
            return "Failed" if any(codes) else "Succeeded"
    return "Running"


def internal_ip(node: Obj) -> str:
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    return ""


def set_condition(
    obj: Obj, kind: str, value: str, now: float, reason: str | None = None, message: str | None = None
) -> None:
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition["type"] == kind:
            if condition["status"] != value:
                condition["lastTransitionTime"] = rfc3339(now)
            condition["status"] = value
            for key, new in (("reason", reason), ("message", message)):
                if new:
                    condition[key] = new
                else:
                    condition.pop(key, None)
            return
    added: Obj = {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(now),
    }
    if reason:
        added["reason"] = reason
    if message:
        added["message"] = message
    conditions.append(added)
