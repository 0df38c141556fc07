"""Sample clusters from events/: the nodes and pods the sample events name, loaded into the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localcloud.kube import KubeEmulator
from localcloud.kube.resources import NAMESPACES, PODS, SERVICEACCOUNTS, SERVICES
from localcloud.template import PROJECT_ROOT

EVENTS_DIR = PROJECT_ROOT / "events"


def load_cluster_spec(name: str, events_dir: Path = EVENTS_DIR) -> dict[str, Any]:
    """``events/clusters/<name>.json``: the cluster the sample events are about."""
    spec: dict[str, Any] = json.loads((events_dir / "clusters" / f"{name}.json").read_text())
    return spec


def populate(
    emulator: KubeEmulator,
    spec: dict[str, Any],
    namespaces: Iterable[str] = (),
    local_nodes: Iterable[str] = (),
    service_accounts: Iterable[tuple[str, str]] = (),
) -> None:
    """Create the spec's namespaces, nodes and running pods; ``local_nodes`` run their pods as processes;
    ``service_accounts`` are (namespace, name) pairs (every namespace has its ``default`` one already)."""
    local = set(local_nodes)
    for namespace in [*spec.get("namespaces", []), *namespaces]:
        emulator.registry.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    for namespace, name in service_accounts:
        emulator.registry.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": name}})
    for node in spec["nodes"]:
        emulator.add_node(
            node["name"],
            instance_id=node["instance_id"],
            zone=node["zone"],
            ip=node["ip"],
            labels=node.get("labels"),
            taints=node.get("taints", ()),
            ready=node.get("ready", True),
            nodegroup=node.get("nodegroup", "default"),
            local=node["name"] in local,
        )
    for pod in spec.get("pods", []):
        owner = pod.get("owner")
        metadata: dict[str, Any] = {"name": pod["name"], "labels": pod.get("labels", {})}
        if owner:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner["kind"],
                    "name": owner["name"],
                    "uid": f"uid-{owner['name']}",
                    "controller": True,
                }
            ]
        emulator.registry.create(
            PODS,
            pod["namespace"],
            {
                "metadata": metadata,
                "spec": {
                    "nodeName": pod["node"],
                    "containers": [{"name": "app", "image": "public.ecr.aws/docker/library/busybox:1.36"}],
                },
                "status": {"podIP": pod.get("ip"), "podIPs": [{"ip": pod["ip"]}] if pod.get("ip") else []},
            },
        )
    for service in spec.get("services", []):
        emulator.registry.create(
            SERVICES,
            service["namespace"],
            {
                "metadata": {"name": service["name"], "labels": service.get("labels", {})},
                "spec": {"selector": service.get("selector"), "ports": service["ports"]},
            },
        )
