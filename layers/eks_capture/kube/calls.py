"""The Kubernetes calls the capture lifecycle makes, as JSON dicts, through the one client of eks.py.

Requests go through the ApiClient's own serializer, auth and retries, but not through the generated
CoreV1Api/BatchV1Api classes: importing those costs about a second of cold start, validating every
call costs CPU, and the domain works on the API's JSON form anyway. Every response is read to its end,
which hands its connection back to the pool for the next request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture.errors import ClusterRefused
from eks_capture.kube import eks
from eks_capture.kube.labels import CAPTURE_SELECTOR, RECORDER_SELECTOR
from eks_capture.kube.refusals import api_message, refused_by

if TYPE_CHECKING:
    import boto3

PAGE_SIZE = 500
LIST_ATTEMPTS = 3  # a list whose continue token expired starts again, at most this often in all
logger = Logger(child=True)
T = TypeVar("T")
FAILED_CREATE_SELECTOR = "reason=FailedCreate,involvedObject.kind=Job"
JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


class Cluster:
    """One EKS cluster's API, spoken to in the capture's words; every failure becomes a domain error."""

    def __init__(
        self,
        name: str,
        api: client.ApiClient | None = None,
        timeout: tuple[float, float] = eks.REQUEST_TIMEOUT,
        session: boto3.Session | None = None,
        backoff: float = eks.BACKOFF_FACTOR_SECONDS,
    ) -> None:
        self.name = name
        self.timeout = timeout  # (connect, read) seconds of each attempt
        self._session = session  # whose credentials sign the token (None: this process's); a 401 names it
        self._api = api or eks.api_client(name, session=session, backoff=backoff)

    def request(
        self,
        method: str,
        path: str,
        operation: str,
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API call; its JSON answer, or the domain error for a failure (ApiException for 404/409).

        The body, JSON-shaped already, goes to the REST client as it is (which encodes it): the
        ApiClient's ``sanitize_for_serialization`` would only copy it node by node (a Job create took
        0.58 ms of CPU with it, 0.44 ms without).
        """
        verb, url, headers, _no_body, post_params = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={**JSON_HEADERS, "Content-Type": content_type},
            auth_settings=["BearerToken"],
        )
        with eks.kube_errors(self.name, operation, self._session):
            response = self._api.call_api(
                verb, url, headers, body, post_params, _request_timeout=self.timeout
            )
            response.read()  # type: ignore[no-untyped-call]
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=None, data=None)
        return dict(json.loads(response.data or b"{}"))

    def pages(
        self, path: str, operation: str, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every item of a list, page by page (``limit``/``continue``), as one logical list call."""
        return self.collect(path, operation, list, label_selector, field_selector)

    def collect(
        self,
        path: str,
        operation: str,
        keep: Callable[[Iterator[dict[str, Any]]], T],
        label_selector: str = "",
        field_selector: str = "",
    ) -> T:
        """What ``keep`` makes of a list's items as the pages arrive (it may stop early: no further page
        is asked for).

        A continue token expires when etcd compacts its revision (410 ``Expired``, every few minutes on
        a busy cluster); the list then starts again from its first page and ``keep`` runs again on the
        fresh items, so the answer is always one consistent snapshot, never a mix of two.
        """
        attempt = 1
        while True:
            try:
                return keep(self._pages(path, operation, label_selector, field_selector))
            except ApiException as error:
                if error.status != 410 or attempt >= LIST_ATTEMPTS:
                    raise
            attempt += 1
            logger.warning(
                "list continuation expired; listing again from the first page",
                extra={"cluster": self.name, "operation": operation, "attempt": attempt},
            )

    def _pages(
        self, path: str, operation: str, label_selector: str, field_selector: str
    ) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            query = [("limit", str(PAGE_SIZE))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            page = self.request("GET", path, operation, query)
            yield from page.get("items", [])
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                return

    def nodes(self) -> list[dict[str, Any]]:
        """Every node (one paginated list, never one call per node)."""
        return self.pages("/api/v1/nodes", "list nodes")

    def pods(self, namespace: str | None = None, label_selector: str = "") -> list[dict[str, Any]]:
        """Pods of a namespace (or of the whole cluster) matching ``label_selector``."""
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        return self.pages(path, "list pods", label_selector)

    def services(self) -> list[dict[str, Any]]:
        """Every service of the cluster."""
        return self.pages("/api/v1/services", "list services")

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Service, or None when the namespace has no Service of that name."""
        try:
            return self.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}", "get services")
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        """The EndpointSlices of a Service (the ``kubernetes.io/service-name`` label the controller sets)."""
        path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        return self.pages(path, "list endpointslices", f"kubernetes.io/service-name={service}")

    def capture_jobs(self, namespace: str, label_selector: str = CAPTURE_SELECTOR) -> list[dict[str, Any]]:
        """The capture Jobs in ``namespace`` (by default all of them, one label-selected list)."""
        return self.pages(f"/apis/batch/v1/namespaces/{namespace}/jobs", "list jobs", label_selector)

    def capture_pods(self, namespace: str, label_selector: str = CAPTURE_SELECTOR) -> list[dict[str, Any]]:
        return self.pods(namespace, label_selector)

    def job_refusals(self, namespace: str) -> dict[str, str]:
        """Why the Job controller could not create a Job's pod, by Job name: the message of its latest
        ``FailedCreate`` event (``Error creating: pods "..." is forbidden: ...``), one list call."""
        path = f"/api/v1/namespaces/{namespace}/events"
        latest: dict[str, tuple[str, str]] = {}
        for event in self.pages(path, "list events", field_selector=FAILED_CREATE_SELECTOR):
            job = (event.get("involvedObject") or {}).get("name") or ""
            when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
            if job not in latest or when >= latest[job][0]:
                latest[job] = (when, str(event.get("message") or ""))
        return {job: message for job, (_, message) in latest.items()}

    def create_job(self, namespace: str, job: dict[str, Any]) -> bool:
        """Create ``job``; False when it exists already (a retried start), so creation is idempotent.

        A refusal of what is asked (400, 404, 422...: a webhook, validation, a missing namespace) is a
        ClusterRefused with the API's words, as admission's 403 already is."""
        try:
            self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", "create jobs", body=job)
        except ApiException as error:
            if error.status == 409:
                return False
            raise self._refused(error, "create jobs") from error
        return True

    def _refused(self, error: ApiException, operation: str) -> Exception:
        """A 4xx refusal of what a create asks as ClusterRefused (who refused, the API's words)."""
        if not 400 <= error.status < 500:
            return error
        message = api_message(error)
        return ClusterRefused(self.name, operation, error.status, refused_by(error.status, message), message)

    def delete_job(self, namespace: str, name: str, propagation: str = "Foreground") -> bool:
        """Delete a Job and its pods gracefully; False when it is already gone.

        Foreground keeps the Job visible (with a deletionTimestamp) until its pods have finished their
        grace period, so a sweep sees a capture that is still flushing rather than one that vanished.
        """
        return self._delete(
            f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            "delete jobs",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete a pod gracefully; False when it is already gone."""
        return self._delete(f"/api/v1/namespaces/{namespace}/pods/{name}", "delete pods", None)

    def _delete(self, path: str, operation: str, options: dict[str, Any] | None) -> bool:
        try:
            self.request("DELETE", path, operation, body=options)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def recorder_daemonsets(self, namespace: str) -> list[dict[str, Any]]:
        """The recorder DaemonSets of ``namespace`` (one label-selected list)."""
        path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets"
        return self.pages(path, "list daemonsets", RECORDER_SELECTOR)

    def apply_daemonset(self, namespace: str, daemonset: dict[str, Any]) -> str:
        """Create ``daemonset``, or replace the one of that name: "created" or "updated"."""
        path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets"
        try:
            self.request("POST", path, "create daemonsets", body=daemonset)
        except ApiException as error:
            if error.status != 409:
                raise self._refused(error, "create daemonsets") from error
            name = daemonset["metadata"]["name"]
            try:
                self.request("PUT", f"{path}/{name}", "update daemonsets", body=daemonset)
            except ApiException as refused:
                raise self._refused(refused, "update daemonsets") from refused
            return "updated"
        return "created"

    def delete_daemonset(self, namespace: str, name: str) -> bool:
        """Delete a DaemonSet (its pods get their grace period); False when it is already gone."""
        return self._delete(
            f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}",
            "delete daemonsets",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )

    def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
        """Set annotations on a pod (JSON merge patch); the patched pod."""
        return self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            "patch pods",
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )
