"""The Kubernetes half of the local cloud: an EKS-like API server over HTTPS, controllers and kubelets.

``start_kube_emulator(cluster, sts_endpoint_url, region, creator_arn)`` returns a running ``KubeEmulator``:

- it serves namespaces, nodes, pods (+ status, log), services, serviceaccounts, resourcequotas, events,
  batch/v1 jobs, apps/v1 daemonsets and rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles
  and clusterrolebindings: create, get, list (selectors, pagination), watch, update, patch, delete,
  deletecollection; with discovery (/api, /apis) and OpenAPI v3, so Debian's kubectl works against it
  (``emulator.kubectl(token)``);
- creates pass the admission chain in the API server's order and words: ServiceAccount (every namespace
  gets its ``default`` account), Pod Security from the namespace's ``pod-security.kubernetes.io/enforce``
  label, validating webhooks (``emulator.webhooks.deny(...)``), ResourceQuota; the Job and DaemonSet
  controllers answer a refused pod with a ``FailedCreate`` event on their object and back off;
- reach it as production does: set ``emulator.env()`` (``combined_env`` for several clusters) and call
  ``eks_capture.kube.eks.api_client(cluster)``; or ``emulator.configuration(token)`` / ``write_kubeconfig``;
- tokens are EKS tokens verified against the local STS; authorization is EKS's: default deny, the access
  entries the local EKS API holds for the cluster map IAM principals to username, groups and access
  policies (read over HTTP, each answer kept 1 s; the cluster's creator is an admin; an unmapped principal
  gets 401), and RBAC objects (with the API server's bootstrap roles) do the rest;
  impersonation and access reviews (``kubectl auth can-i``) are answered by the same authorizer;
  ``emulator.auth_failures`` says why a token got 401;
- ``emulator.faults`` injects latency, errors (500, 503, 429 + Retry-After) and dropped connections;
  ``emulator.calls`` counts requests by (verb, resource);
- ``add_node`` / ``set_node_ready`` / ``remove_node`` shape the cluster; pods on ordinary nodes follow
  ``script_pods(PodBehaviour(...))``; pods on a ``local=True`` node run their containers as processes
  (``emulator.local_env`` is their base environment);
- ``tick()``, ``settle()`` and ``wait_for()`` drive the controllers deterministically; ``objects``,
  ``get`` and ``create`` read and seed the store without HTTP.
"""

from localcloud.kube.behaviours import PodBehaviour
from localcloud.kube.emulator import KubeEmulator, combined_env, start_kube_emulator
from localcloud.kube.resources import (
    DAEMONSETS,
    EVENTS,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    RESOURCEQUOTAS,
    SERVICEACCOUNTS,
    SERVICES,
)

__all__ = [
    "DAEMONSETS",
    "EVENTS",
    "JOBS",
    "NAMESPACES",
    "NODES",
    "PODS",
    "RESOURCEQUOTAS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "KubeEmulator",
    "PodBehaviour",
    "combined_env",
    "start_kube_emulator",
]
