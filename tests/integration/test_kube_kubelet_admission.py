"""A pod bound with spec.nodeName meets the node's kubelet, not the scheduler: cordons and NoSchedule taints
do not stop it; a full node, an unmatched selector or an untolerated NoExecute taint does, with the
kubelet's own reason and message; a NoExecute taint added later evicts running pods (taint manager)."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.kube import KubeEmulator, PodBehaviour

CONTAINER = {"name": "agent", "image": "registry.example/agent:1.0"}
NO_EXECUTE = {"key": "maintenance", "value": "true", "effect": "NoExecute"}


def create_pod(core: Any, name: str, **spec: Any) -> None:
    containers = [{**CONTAINER, "resources": spec.pop("resources")}] if "resources" in spec else [CONTAINER]
    body = {"metadata": {"name": name}, "spec": {"containers": containers, "nodeName": "n1", **spec}}
    core.create_namespaced_pod("default", body)


def phase_of(core: Any, name: str) -> tuple[str, str | None, str | None]:
    status = core.read_namespaced_pod(name, "default").status
    return status.phase, status.reason, status.message


def warnings_about(core: Any, name: str) -> list[tuple[str, str]]:
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
    return [(event.reason, event.message) for event in events if event.type == "Warning"]


@pytest.mark.parametrize(
    ("node", "why"),
    [
        ({"patch": {"spec": {"unschedulable": True}}}, "cordoned"),
        ({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}, "NoSchedule-tainted"),
    ],
)
def test_a_pod_bound_to_a_node_runs_there_even_when_the_scheduler_would_not_place_it(
    kube: KubeEmulator, core: Any, node: dict[str, Any], why: str
) -> None:
    kube.add_node("n1", taints=node.get("taints", ()))
    if "patch" in node:
        core.patch_node("n1", node["patch"])
    create_pod(core, "bound")
    kube.settle()
    assert phase_of(core, "bound")[0] == "Running", f"a nodeName pod on a {why} node runs"


def test_a_full_node_rejects_the_next_pod_out_of_pods_with_the_kubelets_message(
    kube: KubeEmulator, core: Any
) -> None:
    kube.add_node("n1", allocatable={"pods": "2"})
    create_pod(core, "first")
    create_pod(core, "second")
    kube.settle()
    create_pod(core, "third")
    kube.settle()

    message = "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"
    assert phase_of(core, "third") == ("Failed", "OutOfpods", f"Pod was rejected: {message}")
    assert warnings_about(core, "third") == [("OutOfpods", message)]
    assert [phase_of(core, name)[0] for name in ("first", "second")] == ["Running", "Running"]


def test_a_finished_pod_no_longer_counts_against_the_nodes_pods(kube: KubeEmulator, core: Any) -> None:
    kube.add_node("n1", allocatable={"pods": "1"})
    kube.script_pods(PodBehaviour(run_for=0.1, exit_code=0), name_prefix="short")
    create_pod(core, "short", restartPolicy="Never")
    kube.wait_for(lambda: phase_of(core, "short")[0] == "Succeeded", what="the first pod to finish")
    create_pod(core, "next")
    kube.settle()
    assert phase_of(core, "next")[0] == "Running"


@pytest.mark.parametrize(
    ("resources", "reason", "message"),
    [
        ({"requests": {"cpu": "2500m"}}, "OutOfcpu", "cpu, requested: 2500, used: 0, capacity: 1930"),
        (
            {"requests": {"memory": "8Gi"}},
            "OutOfmemory",
            f"memory, requested: 8589934592, used: 0, capacity: {7210892 * 1024}",  # 7210892Ki
        ),
    ],
)
def test_a_request_over_the_nodes_allocatable_is_rejected_naming_the_resource(
    kube: KubeEmulator, core: Any, resources: dict[str, Any], reason: str, message: str
) -> None:
    kube.add_node("n1")
    create_pod(core, "big", resources=resources)
    kube.settle()
    expected = f"Pod was rejected: Node didn't have enough resource: {message}"
    assert phase_of(core, "big") == ("Failed", reason, expected)


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        (
            {},
            "TaintToleration",
            "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate",
        ),
        (
            {"nodeSelector": {"eks-capture.io/node": "elsewhere"}},
            "NodeAffinity",
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
        ),
    ],
)
def test_the_kubelet_rejects_an_untolerated_no_execute_taint_or_an_unmatched_selector(
    kube: KubeEmulator, core: Any, spec: dict[str, Any], reason: str, message: str
) -> None:
    kube.add_node("n1", taints=[] if spec else [NO_EXECUTE])
    create_pod(core, "refused", **spec)
    kube.settle()
    assert phase_of(core, "refused") == ("Failed", reason, f"Pod was rejected: {message}")


def test_a_no_execute_taint_evicts_running_pods_that_do_not_tolerate_it(
    kube: KubeEmulator, core: Any
) -> None:
    kube.add_node("n1")
    tolerant = [{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}]
    create_pod(core, "plain")
    create_pod(core, "tolerant", tolerations=tolerant)
    create_pod(core, "briefly", tolerations=[{**tolerant[0], "tolerationSeconds": 1}])
    kube.settle()
    core.patch_node("n1", {"spec": {"taints": [NO_EXECUTE]}})

    def gone(name: str) -> bool:
        return name not in {pod.metadata.name for pod in core.list_namespaced_pod("default").items}

    kube.wait_for(lambda: gone("plain"), what="the untolerating pod to be evicted")
    assert not gone("briefly"), "tolerationSeconds lets the pod stay a while"
    kube.wait_for(lambda: gone("briefly"), timeout=5, what="the pod to go after its tolerationSeconds")
    assert phase_of(core, "tolerant")[0] == "Running"
    evictions = core.list_namespaced_event("default", field_selector="reason=TaintManagerEviction").items
    assert {event.message for event in evictions} == {
        "Marking for deletion Pod default/plain",
        "Marking for deletion Pod default/briefly",
    }
