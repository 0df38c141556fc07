"""The Kubernetes half of the local cloud: an EKS-like API server over HTTPS, with controllers and kubelets.

Start one with ``start_kube_emulator(cluster, sts_endpoint_url, region)``; reach it with the official
client through ``emulator.configuration(token)`` or, as production does, ``eks_capture.eks`` with
``emulator.env()`` set.
"""

from localcloud.kube.emulator import KubeEmulator, start_kube_emulator
from localcloud.kube.kubelet import PodBehaviour
from localcloud.kube.resources import DAEMONSETS, JOBS, NAMESPACES, NODES, PODS, SERVICES

__all__ = [
    "DAEMONSETS",
    "JOBS",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SERVICES",
    "KubeEmulator",
    "PodBehaviour",
    "start_kube_emulator",
]
