"""Injected faults and latency, the call counter, and eks.py's retries against them."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture.errors import ApiThrottled, ClusterUnreachable
from eks_capture.kube import eks
from localcloud.kube import KubeEmulator
from tests.fixtures.kube import KUBE_CLUSTER, core_api

POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def raw_core(kube: KubeEmulator) -> Any:
    """A client with no retries, to see the emulator's answers as they are."""
    configuration = kube.configuration(eks.generate_token(KUBE_CLUSTER).value)
    configuration.retries = False
    return core_api(client.ApiClient(configuration))


def test_throttled_request_answers_429_with_retry_after(kube: KubeEmulator) -> None:
    kube.faults.fail("list", "pods", status=429, retry_after=3)
    with pytest.raises(ApiException) as caught:
        raw_core(kube).list_namespaced_pod("default")
    assert caught.value.status == 429
    assert (caught.value.headers or {}).get("Retry-After") == "3"
    body = json.loads(caught.value.body or "{}")
    assert (body["reason"], body["details"], body["code"]) == (
        "TooManyRequests",
        {"retryAfterSeconds": 3},
        429,
    )


def test_eks_client_waits_retry_after_then_creates(kube: KubeEmulator, core: Any) -> None:
    kube.faults.fail("create", "pods", status=429, retry_after=1, times=1)
    started = time.monotonic()
    core.create_namespaced_pod("default", POD)
    assert time.monotonic() - started >= 1.0
    assert kube.calls["create", "pods"] == 2


def test_eks_client_retries_server_errors_on_reads(kube: KubeEmulator, core: Any) -> None:
    kube.faults.fail("list", "pods", status=500, times=2)
    assert core.list_namespaced_pod("default").items == []
    assert kube.calls["list", "pods"] == 3


def test_eks_client_does_not_repeat_a_create_after_a_server_error(kube: KubeEmulator, core: Any) -> None:
    kube.faults.fail("create", "pods", status=500, times=1)
    with pytest.raises(ClusterUnreachable) as caught, eks.kube_errors(KUBE_CLUSTER, "create pod"):
        core.create_namespaced_pod("default", POD)
    assert "HTTP 500" in caught.value.message
    assert kube.calls["create", "pods"] == 1


def test_lasting_throttling_becomes_api_throttled(kube: KubeEmulator) -> None:
    kube.faults.fail("list", "nodes", status=429, retry_after=0)
    api = core_api(eks.api_client(KUBE_CLUSTER, attempts=3))
    with pytest.raises(ApiThrottled), eks.kube_errors(KUBE_CLUSTER, "list nodes"):
        api.list_node()
    assert kube.calls["list", "nodes"] == 3


def test_dropped_connection_is_retried_for_reads(kube: KubeEmulator, core: Any) -> None:
    kube.faults.drop("get", "namespaces", times=1)
    assert core.read_namespace("default").metadata.name == "default"
    assert kube.calls["get", "namespaces"] == 2


def test_dropped_connection_on_create_is_unreachable(kube: KubeEmulator, core: Any) -> None:
    kube.faults.drop("create", "pods", times=1)
    with pytest.raises(ClusterUnreachable), eks.kube_errors(KUBE_CLUSTER, "create pod"):
        core.create_namespaced_pod("default", POD)


def test_error_rate_hits_about_that_share_of_requests(kube: KubeEmulator) -> None:
    kube.faults.fail("get", "namespaces", status=503, rate=0.3)
    api = raw_core(kube)
    statuses = []
    for _ in range(200):
        try:
            api.read_namespace("default")
            statuses.append(200)
        except ApiException as error:
            statuses.append(error.status)
    assert set(statuses) == {200, 503}
    assert 30 <= statuses.count(503) <= 90


def test_latency_is_added_to_matching_requests_only(kube: KubeEmulator, core: Any) -> None:
    kube.faults.add_latency(0.5, verb="list", resource="pods")
    started = time.monotonic()
    core.list_namespace()
    unaffected = time.monotonic() - started
    started = time.monotonic()
    core.list_namespaced_pod("default")
    delayed = time.monotonic() - started
    assert delayed >= 0.5 > unaffected


def test_call_counter_counts_by_verb_and_resource(kube: KubeEmulator, core: Any) -> None:
    kube.calls.reset()
    core.create_namespaced_pod("default", POD)
    core.read_namespaced_pod("p", "default")
    core.read_namespaced_pod("p", "default")
    core.list_pod_for_all_namespaces()
    assert (kube.calls["create", "pods"], kube.calls["get", "pods"], kube.calls["list", "pods"]) == (1, 2, 1)
    assert kube.calls.total(resource="pods") == 4
    assert kube.calls.snapshot() == {"create pods": 1, "get pods": 2, "list pods": 1}


def test_clearing_faults_restores_service(kube: KubeEmulator, core: Any) -> None:
    kube.faults.fail(status=500)
    kube.faults.clear()
    assert core.read_namespace("default").metadata.name == "default"


def test_pool_size_bounds_concurrent_requests(kube: KubeEmulator) -> None:
    kube.faults.add_latency(0.2, verb="get", resource="namespaces")
    api = core_api(eks.api_client(KUBE_CLUSTER, pool_size=2))
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: api.read_namespace("default"), range(6)))
    assert time.monotonic() - started >= 3 * 0.2
