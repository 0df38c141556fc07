"""Node objects as an EKS managed node group registers them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from localcloud.kube.clock import rfc3339

Obj = dict[str, Any]


def node_object(
    name: str,
    *,
    instance_id: str,
    zone: str,
    ip: str,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    ready: bool = True,
    instance_type: str = "m5.large",
    nodegroup: str = "default",
    allocatable: Mapping[str, str] | None = None,
) -> Obj:
    """A Node with providerID ``aws:///<az>/<instance-id>``, EKS's labels, addresses, conditions; the
    allocatable pods of an m5.large under the VPC CNI (29) unless ``allocatable`` says otherwise."""
    region = zone[:-1]
    dns = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    stamp = rfc3339(time.time())
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": instance_type,
                "beta.kubernetes.io/instance-type": instance_type,
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zone,
                "failure-domain.beta.kubernetes.io/region": region,
                "failure-domain.beta.kubernetes.io/zone": zone,
                "eks.amazonaws.com/nodegroup": nodegroup,
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
                **(labels or {}),
            },
            "annotations": {"alpha.kubernetes.io/provided-node-ip": ip},
        },
        "spec": {
            "providerID": f"aws:///{zone}/{instance_id}",
            **({"taints": [dict(t) for t in taints]} if taints else {}),
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": dns},
                {"type": "Hostname", "address": dns},
            ],
            "capacity": {"cpu": "2", "memory": "7901068Ki", "pods": "29", "ephemeral-storage": "20959212Ki"},
            "allocatable": {
                "cpu": "1930m",
                "memory": "7210892Ki",
                "pods": "29",
                "ephemeral-storage": "18242267924",
                **(allocatable or {}),
            },
            "conditions": [
                _condition("MemoryPressure", "False", "KubeletHasSufficientMemory", stamp),
                _condition("DiskPressure", "False", "KubeletHasNoDiskPressure", stamp),
                _condition("PIDPressure", "False", "KubeletHasSufficientPID", stamp),
                ready_condition(ready, stamp),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "containerd://1.7.27",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.33.0-eks",
                "kubeletVersion": "v1.33.0-eks",
                "machineID": instance_id,
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2023",
                "systemUUID": instance_id,
            },
        },
    }


def _condition(kind: str, status: str, reason: str, stamp: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": reason,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


def ready_condition(ready: bool, stamp: str) -> Obj:
    if ready:
        return _condition("Ready", "True", "KubeletReady", stamp) | {
            "message": "kubelet is posting ready status"
        }
    return _condition("Ready", "False", "KubeletNotReady", stamp) | {
        "message": "container runtime network not ready: NetworkReady=false"
    }
