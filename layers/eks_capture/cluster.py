"""The Kubernetes calls the capture lifecycle makes, as JSON dicts, through the one client of eks.py.

Responses are read raw (``_preload_content=False``) and parsed as JSON: the generated models cost
seconds on a 500-node list and the domain works on the API's JSON form anyway. Every raw response is
read to its end (``.data``), which hands its connection back to the pool for the next request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture import eks
from eks_capture.manifests import APP_NAME, LABEL_COMPONENT, LABEL_NAME

PAGE_SIZE = 500
CAPTURE_SELECTOR = f"{LABEL_NAME}={APP_NAME},{LABEL_COMPONENT}=capture"


def _json(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.data))


class Cluster:
    """One EKS cluster's API, spoken to in the capture's words; every failure becomes a domain error."""

    def __init__(self, name: str, api: client.ApiClient | None = None) -> None:
        self.name = name
        self._api = api or eks.api_client(name)
        self._core = client.CoreV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)

    def _pages(self, call: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            with eks.kube_errors(self.name, operation):
                page = _json(call(limit=PAGE_SIZE, _continue=token, _preload_content=False, **kwargs))
            yield from page.get("items", [])
            token = page.get("metadata", {}).get("continue") or None
            if not token:
                return

    def nodes(self) -> list[dict[str, Any]]:
        """Every node (one paginated list, never one call per node)."""
        return list(self._pages(self._core.list_node, "list nodes"))

    def pods(self, namespace: str | None = None, label_selector: str = "") -> list[dict[str, Any]]:
        """Pods of a namespace (or of the whole cluster) matching ``label_selector``."""
        if namespace is None:
            return list(
                self._pages(
                    self._core.list_pod_for_all_namespaces, "list pods", label_selector=label_selector
                )
            )
        return list(
            self._pages(
                self._core.list_namespaced_pod,
                "list pods",
                namespace=namespace,
                label_selector=label_selector,
            )
        )

    def capture_jobs(self, namespace: str, label_selector: str = CAPTURE_SELECTOR) -> list[dict[str, Any]]:
        """The capture Jobs in ``namespace`` (by default all of them, one label-selected list)."""
        return list(
            self._pages(
                self._batch.list_namespaced_job,
                "list jobs",
                namespace=namespace,
                label_selector=label_selector,
            )
        )

    def capture_pods(self, namespace: str, label_selector: str = CAPTURE_SELECTOR) -> list[dict[str, Any]]:
        return self.pods(namespace, label_selector)

    def create_job(self, namespace: str, job: dict[str, Any]) -> bool:
        """Create ``job``; False when it exists already (a retried start), so creation is idempotent."""
        try:
            with eks.kube_errors(self.name, "create jobs"):
                self._batch.create_namespaced_job(namespace, cast(Any, job), _preload_content=False).data
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_job(self, namespace: str, name: str, propagation: str = "Foreground") -> bool:
        """Delete a Job and its pods gracefully; False when it is already gone.

        Foreground keeps the Job visible (with a deletionTimestamp) until its pods have finished their
        grace period, so a sweep sees a capture that is still flushing rather than one that vanished.
        """
        try:
            with eks.kube_errors(self.name, "delete jobs"):
                self._batch.delete_namespaced_job(
                    name, namespace, propagation_policy=propagation, _preload_content=False
                ).data
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete a pod gracefully; False when it is already gone."""
        try:
            with eks.kube_errors(self.name, "delete pods"):
                self._core.delete_namespaced_pod(name, namespace, _preload_content=False).data
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True
