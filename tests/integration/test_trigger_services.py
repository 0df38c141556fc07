"""A request naming a Service captures the nodes of its ready endpoints: both ends of a flow in one capture.

The sample cluster ``shop-prod`` has the Service ``payments/ledger`` (443 -> 8443) in front of ledger-0;
the emulator's endpointslice controller keeps its EndpointSlice as Kubernetes' does, and the trigger reads
it over HTTPS with the kubernetes client.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.errors import CaptureError, CaptureRejected
from localcloud.kube import KubeEmulator, PodBehaviour
from localcloud.kube.resources import ENDPOINTSLICES, JOBS, PODS
from tests.events import load_event
from tests.fixtures.cluster import revoke
from tests.fixtures.sessions import stored_session

NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"  # checkout-7f9c6d5b8-x2k4p
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"  # checkout-7f9c6d5b8-q8w1z
NODE_GPU = "ip-192-168-77-9.us-west-2.compute.internal"  # ledger-0, 192.168.50.12
NAMESPACE = "eks-capture"


def _event(service: str, service_ports: bool = True) -> dict[str, Any]:
    event = copy.deepcopy(load_event("start-capture-service"))
    event["detail"]["targets"]["service"] = service
    event["detail"]["targets"]["service_ports"] = service_ports
    return event


def test_the_service_and_its_clients_pods_start_one_capture_on_both_ends_narrowed_to_its_ports(
    deps: Deps, shop: KubeEmulator
) -> None:
    outcome = trigger.handle(load_event("start-capture-service"), deps)

    assert outcome.status == "running", outcome.message
    session = stored_session(deps, outcome.capture_id)
    assert sorted(session.nodes) == [NODE_A, NODE_B, NODE_GPU]
    assert "service payments/ledger: endpoint 192.168.50.12" in session.nodes[NODE_GPU].matched_by
    assert "pod selector payments/" in session.nodes[NODE_A].matched_by
    assert session.filter == "port 443 or port 8443"
    jobs = shop.objects(JOBS, NAMESPACE)
    assert all(
        "port 443 or port 8443" in job["spec"]["template"]["spec"]["containers"][0]["args"] for job in jobs
    )


def test_the_emulators_endpoint_slice_follows_the_pods_readiness(shop: KubeEmulator) -> None:
    shop.tick()
    (ledger,) = shop.objects(ENDPOINTSLICES, "payments")
    assert ledger["metadata"]["labels"]["kubernetes.io/service-name"] == "ledger"
    assert ledger["ports"] == [{"name": "grpc", "protocol": "TCP", "port": 8443}]
    (endpoint,) = ledger["endpoints"]
    assert (endpoint["addresses"], endpoint["nodeName"]) == (["192.168.50.12"], NODE_GPU)
    assert endpoint["conditions"]["ready"] is True


def test_an_endpoint_that_is_not_ready_leaves_its_node_out(deps: Deps, shop: KubeEmulator) -> None:
    """A second ledger pod on node B still starting (ContainerCreating): its endpoint is not ready."""
    shop.script_pods(PodBehaviour(start_after=3600), name_prefix="ledger-1")
    shop.registry.create(
        PODS,
        "payments",
        {
            "metadata": {"name": "ledger-1", "labels": {"app.kubernetes.io/name": "ledger"}},
            "spec": {"nodeName": NODE_B, "containers": [{"name": "app", "image": "busybox:1.36"}]},
            "status": {"podIP": "192.168.40.77", "podIPs": [{"ip": "192.168.40.77"}]},
        },
    )
    shop.tick()
    event = _event("payments/ledger")
    del event["detail"]["targets"]["pod_selector"]

    outcome = trigger.handle(event, deps)

    session = stored_session(deps, outcome.capture_id)
    assert sorted(session.nodes) == [NODE_GPU]
    (ledger,) = shop.objects(ENDPOINTSLICES, "payments")
    readiness = {e["addresses"][0]: e["conditions"]["ready"] for e in ledger["endpoints"]}
    assert readiness == {"192.168.50.12": True, "192.168.40.77": False}


def test_a_service_that_does_not_exist_is_named_as_gone_and_the_clients_are_still_captured(
    deps: Deps, shop: KubeEmulator
) -> None:
    outcome = trigger.handle(_event("payments/ledgr"), deps)

    session = stored_session(deps, outcome.capture_id)
    assert sorted(session.nodes) == [NODE_A, NODE_B]
    assert session.skipped == {"service payments/ledgr": "gone: no service ledgr in namespace payments"}
    assert session.filter == ""  # no ports to narrow to


def test_without_leave_to_list_endpoint_slices_the_request_fails_in_rbacs_words_and_starts_nothing(
    deps: Deps, shop: KubeEmulator
) -> None:
    revoke(shop, "list", "endpointslices")

    with pytest.raises(CaptureError) as refused:
        trigger.handle(load_event("start-capture-service"), deps)

    assert "endpointslices" in refused.value.message
    assert shop.objects(JOBS, NAMESPACE) == []


@pytest.mark.parametrize(
    ("service", "field_problem"),
    [
        ("ledger", "namespace/name"),
        ("payments/9ledger", "start with a letter"),
        ("Payments/ledger", "namespace"),
    ],
)
def test_a_malformed_service_is_refused_before_any_cluster_call(
    deps: Deps, shop: KubeEmulator, service: str, field_problem: str
) -> None:
    with pytest.raises(CaptureRejected) as rejected:
        trigger.handle(_event(service), deps)

    assert rejected.value.message.startswith("detail.targets.service: ")
    assert field_problem in rejected.value.message
    assert shop.objects(JOBS, NAMESPACE) == []


def test_an_alarms_service_tag_adds_the_services_nodes_to_the_ones_its_metric_names(
    deps: Deps, shop: KubeEmulator
) -> None:
    event = copy.deepcopy(load_event("alarm-single-metric-instance"))  # names NODE_A by its instance id
    event["detail"]["alarmTags"] = {
        "eks-capture:service": "payments/ledger",
        "eks-capture:service-ports": "true",
    }

    outcome = trigger.handle(event, deps)

    session = stored_session(deps, outcome.capture_id)
    assert sorted(session.nodes) == [NODE_A, NODE_GPU], (session.skipped, session.filter, outcome.message)
    assert "service payments/ledger: endpoint 192.168.50.12" in session.nodes[NODE_GPU].matched_by
    assert "port 443 or port 8443" in session.filter
