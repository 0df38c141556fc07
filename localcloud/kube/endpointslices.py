"""discovery.k8s.io/v1 EndpointSlices, kept by the emulator's copy of the endpointslice controller.

As pkg/controller/endpointslice does for a Service with a selector: one slice (up to 100 endpoints,
enough here) labelled ``kubernetes.io/service-name`` and owned by the Service, listing the pods the
selector matches that have an IP: each endpoint's ``nodeName``, ``targetRef`` and its ``ready`` /
``serving`` / ``terminating`` conditions (ready: the pod's Ready condition and not terminating), the
ports resolved from the Service's ``targetPort`` (a number, or a name looked up in the pod's container
ports; a pod without the named port leaves that port out). A Service without a selector gets no slice
from the controller, as in Kubernetes; a Service's slice goes when the Service goes (its owner).
"""

from __future__ import annotations

import hashlib
from typing import Any

from localcloud.kube.controllers import owner_reference
from localcloud.kube.registry import Registry
from localcloud.kube.resources import ENDPOINTSLICES, PODS, SERVICES
from localcloud.kube.store import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
FINISHED = ("Succeeded", "Failed")


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def _selected(service: Obj, pod: Obj) -> bool:
    selector: dict[str, str] = service.get("spec", {}).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _target_port(port: Obj, pod: Obj) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    for container in pod.get("spec", {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return None


def _endpoint(pod: Obj) -> Obj:
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = _ready(pod) and not terminating
    endpoint: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": ready, "serving": _ready(pod), "terminating": terminating},
        "targetRef": {
            "kind": "Pod",
            "namespace": pod["metadata"]["namespace"],
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        },
    }
    if pod.get("spec", {}).get("nodeName"):
        endpoint["nodeName"] = pod["spec"]["nodeName"]
    return endpoint


def desired_slice(service: Obj, pods: list[Obj]) -> Obj:
    """The slice the controller keeps for ``service`` given the namespace's pods."""
    meta = service["metadata"]
    members = sorted(
        (
            p
            for p in pods
            if _selected(service, p)
            and p.get("status", {}).get("podIP")
            and p.get("status", {}).get("phase") not in FINISHED
        ),
        key=lambda p: str(p["metadata"]["name"]),
    )
    ports: list[Obj] = []
    for port in service["spec"].get("ports") or []:
        resolved = {_target_port(port, p) for p in members} - {None}
        if len(resolved) == 1 or not members:
            entry: dict[str, Any] = {"protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry["name"] = port["name"]
            target = resolved.pop() if resolved else port.get("targetPort", port.get("port"))
            if isinstance(target, int):
                entry["port"] = target
            ports.append(entry)
    suffix = hashlib.sha256(meta["uid"].encode()).hexdigest()[:5]
    return {
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "labels": {SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [owner_reference(service)],
        },
        "addressType": "IPv4",
        "endpoints": [_endpoint(p) for p in members],
        "ports": ports,
    }


class EndpointSliceController:
    """Keeps one EndpointSlice per Service with a selector in step with its pods."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sync(self) -> None:
        store = self.registry.store
        for service in store.items(SERVICES):
            meta = service["metadata"]
            if not service.get("spec", {}).get("selector") or meta.get("deletionTimestamp"):
                continue
            want = desired_slice(service, store.items(PODS, meta["namespace"]))
            name = want["metadata"]["name"]
            if store.get(ENDPOINTSLICES, meta["namespace"], name) is None:
                self.registry.create(ENDPOINTSLICES, meta["namespace"], want)
                continue

            def update(obj: Obj, want: Obj = want) -> None:
                obj["endpoints"], obj["ports"] = want["endpoints"], want["ports"]

            self.registry.mutate(ENDPOINTSLICES, meta["namespace"], name, update)
        for orphan in store.items(ENDPOINTSLICES):
            owners = [ref["uid"] for ref in orphan["metadata"].get("ownerReferences") or []]
            if owners and all(store.by_uid(uid) is None for uid in owners):
                self.registry.delete(
                    ENDPOINTSLICES, orphan["metadata"]["namespace"], orphan["metadata"]["name"]
                )
