"""ResourceQuota admission for pods: the ``pods`` count and cpu/memory requests and limits of a namespace.

As the real plugin: a quota that constrains cpu or memory refuses a pod whose containers do not all set
that resource (``failed quota: <name>: must specify ...``); a pod that would take the namespace over a
hard limit is refused with what it asked, what is used and what is allowed (``exceeded quota: ...``).
Usage counts the namespace's pods that are not finished, as the quota controller does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

Obj = dict[str, Any]
COMPUTE = ("cpu", "memory")
TRACKED = ("pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(text: Any) -> Decimal:
    """A resource quantity (``250m``, ``64Mi``, ``1e3``, ``2``) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}: {text!r}")
    number, suffix = Decimal(match[1]), match[2] or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIXES[suffix]


def format_quantity(resource: str, value: Decimal) -> str:
    """The canonical form the API prints: binary suffixes for memory, milli-units for cpu, plain counts."""
    if resource.endswith("memory"):
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            unit = _SUFFIXES[suffix]
            if value >= unit and value % unit == 0:
                return f"{int(value / unit)}{suffix}"
        return str(int(value))
    if value % 1 == 0:
        return str(int(value))
    return f"{int(value * 1000)}m"


def pod_usage(pod: Obj) -> dict[str, Decimal]:
    """What a pod counts against a quota: itself, and the sum of its containers' requests and limits
    (an init container's, when larger, as the scheduler counts it)."""
    spec = pod.get("spec") or {}
    usage: dict[str, Decimal] = {"pods": Decimal(1)}
    for kind in ("requests", "limits"):
        for resource in COMPUTE:
            total = sum(
                (
                    parse_quantity(v)
                    for c in spec.get("containers") or []
                    if (v := _amount(c, kind, resource))
                ),
                Decimal(0),
            )
            init = max(
                (
                    parse_quantity(v)
                    for c in spec.get("initContainers") or []
                    if (v := _amount(c, kind, resource))
                ),
                default=Decimal(0),
            )
            amount = max(total, init)
            if amount:
                usage[f"{kind}.{resource}"] = amount
                if kind == "requests":
                    usage[resource] = amount
    return usage


def _amount(container: Obj, kind: str, resource: str) -> Any:
    return ((container.get("resources") or {}).get(kind) or {}).get(resource)


def _missing(pod: Obj, constrained: set[str]) -> str:
    """``limits.cpu for: capture,upload; ...``: which containers do not set a constrained resource."""
    missing: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        has = {
            f"{kind}.{r}" for kind in ("requests", "limits") for r in COMPUTE if _amount(container, kind, r)
        }
        has |= {r for r in COMPUTE if _amount(container, "requests", r)}
        for resource in sorted(constrained - has):
            missing.setdefault(resource, []).append(str(container.get("name", "")))
    return "; ".join(
        f"{resource} for: {','.join(sorted(names))}" for resource, names in sorted(missing.items())
    )


def _pretty(resources: dict[str, Decimal]) -> str:
    return ",".join(f"{name}={format_quantity(name, resources[name])}" for name in sorted(resources))


def namespace_usage(pods: Iterable[Obj]) -> dict[str, Decimal]:
    """What the namespace's live pods use (finished pods release their share)."""
    used: dict[str, Decimal] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for name, amount in pod_usage(pod).items():
            used[name] = used.get(name, Decimal(0)) + amount
    return used


def quota_refusal(quotas: Iterable[Obj], pods: Iterable[Obj], pod: Obj) -> str | None:
    """Why a new ``pod`` is refused by the namespace's quotas (whose live pods are ``pods``), or None."""
    quotas = list(quotas)
    if not quotas:
        return None
    hards = [
        (
            q["metadata"]["name"],
            {k: parse_quantity(v) for k, v in ((q.get("spec") or {}).get("hard") or {}).items()},
        )
        for q in quotas
    ]
    for name, hard in hards:
        constrained = {k for k in hard if k in TRACKED and k != "pods"}
        if constrained and (missing := _missing(pod, constrained)):
            return f"failed quota: {name}: must specify {missing}"
    used = namespace_usage(pods)
    requested = pod_usage(pod)
    for name, hard in hards:
        asked = {k: v for k, v in requested.items() if k in hard}
        exceeded = sorted(k for k, v in asked.items() if used.get(k, Decimal(0)) + v > hard[k])
        if exceeded:
            return (
                f"exceeded quota: {name}, requested: {_pretty({k: asked[k] for k in exceeded})}, "
                f"used: {_pretty({k: used.get(k, Decimal(0)) for k in exceeded})}, "
                f"limited: {_pretty({k: hard[k] for k in exceeded})}"
            )
    return None


def quota_status(quota: Obj, pods: Iterable[Obj]) -> Obj:
    """The status the quota controller keeps: the hard limits and what the namespace uses of them."""
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    used = namespace_usage(pods)
    return {
        "hard": hard,
        "used": {k: format_quantity(k, used.get(k, Decimal(0))) for k in hard if k in TRACKED},
    }
