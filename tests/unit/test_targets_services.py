"""A Service named by a request: its endpoints as the API gives them, and the nodes the plan takes."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.captures.services import Endpoint, ServiceEndpoints, service_endpoints
from eks_capture.captures.targets import targets_for_request
from eks_capture.events.models import StartCaptureDetail
from eks_capture.kube.nodes import NodeInfo

NODES = [
    NodeInfo.from_kubernetes(
        {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    )
    for name in ("node-a", "node-b")
]
SERVICE = {"metadata": {"name": "ledger", "namespace": "payments"}, "spec": {"ports": [{"port": 443}]}}


def _slice(*endpoints: dict[str, Any], port: int = 8443) -> dict[str, Any]:
    return {"endpoints": list(endpoints), "ports": [{"name": "grpc", "port": port, "protocol": "TCP"}]}


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            {"addresses": ["10.0.0.5"], "nodeName": "node-a", "conditions": {"ready": True}},
            Endpoint("10.0.0.5", "node-a", True),
        ),
        (
            {"addresses": ["10.0.0.5"], "nodeName": "node-a", "conditions": {"ready": False}},
            Endpoint("10.0.0.5", "node-a", False),
        ),
        (
            {"addresses": ["10.0.0.5"], "nodeName": "node-a", "conditions": {}},
            Endpoint("10.0.0.5", "node-a", True),
        ),
        ({"addresses": ["10.0.0.5"]}, Endpoint("10.0.0.5", None, True)),
    ],
    ids=["ready", "not ready", "readiness unknown counts as ready (the API's rule)", "no node name"],
)
def test_an_endpoint_reads_as_the_api_defines_it(endpoint: dict[str, Any], expected: Endpoint) -> None:
    assert service_endpoints("payments/ledger", SERVICE, [_slice(endpoint)]).endpoints == (expected,)


def test_the_ports_filter_holds_the_service_ports_and_the_endpoints_ports() -> None:
    found = service_endpoints("payments/ledger", SERVICE, [_slice(port=8443), _slice(port=9443)])
    assert found.ports_filter() == "port 443 or port 8443 or port 9443"


def test_a_missing_service_has_no_endpoints_and_no_ports() -> None:
    missing = service_endpoints("payments/ledgr", None, [])
    assert (missing.found, missing.endpoints, missing.ports_filter()) == (False, (), None)


def _plan(service: ServiceEndpoints) -> tuple[list[str], dict[str, str], list[str]]:
    detail = StartCaptureDetail.model_validate(
        {"cluster": "shop-prod", "targets": {"service": service.ref}, "reason": "both ends"}
    )
    plan = targets_for_request(detail, NODES, [], max_nodes=10, service=service)
    return list(plan.node_names), {s.target: s.reason for s in plan.skipped}, list(plan.notes)


@pytest.mark.parametrize(
    ("endpoints", "nodes", "skipped", "note"),
    [
        ((Endpoint("10.0.0.5", "node-a", True),), ["node-a"], {}, None),
        ((Endpoint("10.0.0.5", "node-a", True), Endpoint("10.0.0.6", "node-a", True)), ["node-a"], {}, None),
        ((Endpoint("10.0.0.5", "node-a", False),), [], {}, "endpoint 10.0.0.5 is not ready"),
        ((Endpoint("10.0.0.5", None, True),), [], {}, "endpoint 10.0.0.5 names no node"),
        (
            (Endpoint("10.0.0.5", "node-z", True),),
            [],
            {"node-z": "gone: not in the cluster (endpoint 10.0.0.5 of service payments/ledger)"},
            None,
        ),
        ((), [], {}, "service payments/ledger has no ready endpoint"),
    ],
    ids=["ready", "two on one node", "not ready", "no node", "node gone", "no endpoints"],
)
def test_the_plan_takes_the_nodes_of_ready_endpoints_only(
    endpoints: tuple[Endpoint, ...], nodes: list[str], skipped: dict[str, str], note: str | None
) -> None:
    chosen, left_out, notes = _plan(ServiceEndpoints("payments", "ledger", True, endpoints, (443,)))
    assert (chosen, left_out) == (nodes, skipped)
    if note is not None:
        assert any(note in n for n in notes), notes


def test_a_service_that_does_not_exist_is_skipped_by_name() -> None:
    assert _plan(ServiceEndpoints("payments", "ledgr", False)) == (
        [],
        {"service payments/ledgr": "gone: no service ledgr in namespace payments"},
        [],
    )


@pytest.mark.parametrize(
    ("targets", "problem"),
    [
        (
            {"service_ports": True, "nodes": ["node-a"]},
            "service_ports narrows the filter to a service's ports",
        ),
        ({"service": "ledger"}, "must be namespace/name"),
        ({"service": "payments/Ledger"}, "service name must be lowercase"),
        ({"service": "payments/ledger", "all": True}, "do not combine it with other targets"),
    ],
)
def test_a_request_naming_a_service_badly_is_refused(targets: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        StartCaptureDetail.model_validate({"cluster": "shop-prod", "targets": targets, "reason": "x"})
