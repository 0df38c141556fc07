"""Targeting: an alarm or a start request, against a snapshot of the cluster, becomes a plan of nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eks_capture.captures.targets import (
    GONE,
    NOT_READY,
    TargetPlan,
    over_cap,
    targets_for_alarm,
    targets_for_request,
)
from eks_capture.events.models import AlarmStateChange, StartCapture, parse_event
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.settings import NodeFallback
from tests.events import load_event

CLUSTER = "shop-prod"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"
NODE_C = "ip-192-168-77-9.us-west-2.compute.internal"
NODE_D = "ip-192-168-90-1.us-west-2.compute.internal"


def node_json(
    name: str, instance: str, zone: str, group: str, *, ready: bool = True, taints: Any = ()
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "eks.amazonaws.com/nodegroup": group,
                "topology.kubernetes.io/zone": zone,
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {"providerID": f"aws:///{zone}/{instance}", "taints": list(taints)},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True" if ready else "Unknown"},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.0.1"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def pod_json(
    name: str, node: str | None, app: str, owner: tuple[str, str], template_hash: str | None = None
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": app}
    if template_hash:
        labels["pod-template-hash"] = template_hash
    return {
        "metadata": {
            "name": name,
            "namespace": "payments",
            "labels": labels,
            "ownerReferences": [{"kind": owner[0], "name": owner[1], "controller": True}],
        },
        "spec": {"nodeName": node} if node else {},
    }


NODES = [
    NodeInfo.from_kubernetes(node_json(NODE_A, "i-0a1b2c3d4e5f60718", "us-west-2a", "general")),
    NodeInfo.from_kubernetes(
        node_json(
            NODE_B,
            "i-0fedcba9876543210",
            "us-west-2b",
            "general",
            taints=[{"key": "dedicated", "value": "ingress", "effect": "NoSchedule"}],
        )
    ),
    NodeInfo.from_kubernetes(node_json(NODE_C, "i-0123456789abcdef0", "us-west-2c", "gpu", ready=False)),
    NodeInfo.from_kubernetes(node_json(NODE_D, "i-0aaaabbbbccccdddd", "us-west-2c", "general")),
]
PODS = [
    PodInfo.from_kubernetes(
        pod_json(
            "checkout-7f9c8d6b5-x2k4q", NODE_A, "checkout", ("ReplicaSet", "checkout-7f9c8d6b5"), "7f9c8d6b5"
        )
    ),
    PodInfo.from_kubernetes(
        pod_json(
            "checkout-7f9c8d6b5-p9z7m", NODE_B, "checkout", ("ReplicaSet", "checkout-7f9c8d6b5"), "7f9c8d6b5"
        )
    ),
    PodInfo.from_kubernetes(
        pod_json(
            "checkout-7f9c8d6b5-pend1", None, "checkout", ("ReplicaSet", "checkout-7f9c8d6b5"), "7f9c8d6b5"
        )
    ),
    PodInfo.from_kubernetes(
        pod_json(
            "checkout-worker-5d6f7c8b9-abcde",
            NODE_D,
            "checkout-worker",
            ("ReplicaSet", "checkout-worker-5d6f7c8b9"),
            "5d6f7c8b9",
        )
    ),
    PodInfo.from_kubernetes(pod_json("ledger-0", NODE_D, "ledger", ("StatefulSet", "ledger"))),
]


def alarm(name: str, **changes: Any) -> AlarmStateChange:
    raw = load_event(name)
    for key, value in changes.items():
        raw["detail"]["configuration"][key] = value
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    return event


def with_dimensions(name: str, dimensions: dict[str, str]) -> AlarmStateChange:
    raw = load_event(name)
    raw["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] = dimensions
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    return event


def plan_for(
    event: AlarmStateChange, *, fallback: NodeFallback = NodeFallback.NONE, max_nodes: int = 10
) -> TargetPlan:
    return targets_for_alarm(event, NODES, PODS, cluster=CLUSTER, fallback=fallback, max_nodes=max_nodes)


def skipped(plan: TargetPlan) -> dict[str, str]:
    return {s.target: s.reason for s in plan.skipped}


@pytest.mark.parametrize(
    ("sample", "nodes", "dimension"),
    [
        ("alarm-single-metric-instance", {NODE_A}, "InstanceId=i-0a1b2c3d4e5f60718"),
        ("alarm-container-insights-node", {NODE_A}, f"NodeName={NODE_A}"),
        ("alarm-container-insights-pod", {NODE_A, NODE_B}, "PodName=payments/checkout"),
        ("alarm-metric-math", {NODE_A, NODE_B}, "InstanceId=i-0fedcba9876543210"),
    ],
)
def test_alarm_captures_on_the_nodes_its_dimensions_name(
    sample: str, nodes: set[str], dimension: str
) -> None:
    plan = plan_for(alarm(sample))
    assert set(plan.node_names) == nodes
    assert plan.fallback is None
    assert any(dimension in how for match in plan.chosen for how in match.matched_by)


def test_pod_name_dimension_means_the_workload_not_any_pod_with_that_prefix() -> None:
    plan = plan_for(alarm("alarm-container-insights-pod"))
    assert NODE_D not in plan.node_names, "NODE_D hosts only checkout-worker, another workload"


@pytest.mark.parametrize(
    ("dimensions", "nodes"),
    [
        ({"ClusterName": CLUSTER, "Namespace": "payments", "PodName": "ledger"}, {NODE_D}),
        (
            {"ClusterName": CLUSTER, "Namespace": "payments", "FullPodName": "checkout-7f9c8d6b5-p9z7m"},
            {NODE_B},
        ),
        ({"ClusterName": CLUSTER, "Namespace": "payments", "FullPodName": "checkout"}, set()),
        ({"ClusterName": CLUSTER, "Namespace": "other", "PodName": "checkout"}, set()),
        ({"ClusterName": CLUSTER, "NodeName": NODE_A, "InstanceId": "i-0fedcba9876543210"}, set()),
        ({"ClusterName": CLUSTER, "NodeName": NODE_B}, {NODE_B}),
    ],
)
def test_all_node_dimensions_of_one_metric_must_agree(dimensions: dict[str, str], nodes: set[str]) -> None:
    plan = plan_for(with_dimensions("alarm-container-insights-pod", dimensions))
    assert set(plan.node_names) == nodes
    if not nodes:
        assert any(reason.startswith("gone") for reason in skipped(plan).values())


@pytest.mark.parametrize(
    ("group", "nodes"),
    [
        ("eks-general-20261101-a1b2c3d4", (NODE_B,)),
        ("shop-ingress-asg", (NODE_A,)),
        ("ng", (NODE_C,)),
        ("ng-2", (NODE_D,)),
        ("eks-general", ()),
    ],
)
def test_an_auto_scaling_group_takes_exactly_the_nodes_ec2_tags_as_its_members(
    group: str, nodes: tuple[str, ...]
) -> None:
    tagged = [
        NodeInfo(NODE_A, "i-0a1b2c3d4e5f60718", asg_name="shop-ingress-asg"),
        NodeInfo(NODE_B, "i-0fedcba9876543210", asg_name="eks-general-20261101-a1b2c3d4"),
        NodeInfo(NODE_C, "i-0123456789abcdef0", asg_name="ng"),
        NodeInfo(NODE_D, "i-0aaaaaaaaaaaaaaa0", asg_name="ng-2"),
    ]
    event = with_dimensions("alarm-asg", {"AutoScalingGroupName": group})
    plan = targets_for_alarm(event, tagged, [], cluster=CLUSTER, fallback=NodeFallback.NONE, max_nodes=10)
    assert plan.node_names == nodes


def test_a_node_groups_name_alone_makes_no_node_a_member_of_a_group() -> None:
    """EKS names a managed node group's ASG eks-<group>-...; without the EC2 tag fact, nothing matches."""
    event = with_dimensions("alarm-asg", {"AutoScalingGroupName": "eks-general-20261101-a1b2c3d4"})
    plan = plan_for(event, fallback=NodeFallback.ALL)

    assert plan.chosen == ()
    assert skipped(plan)["AutoScalingGroupName=eks-general-20261101-a1b2c3d4"].startswith("gone")


def test_instance_that_left_the_cluster_is_reported_gone() -> None:
    event = with_dimensions("alarm-single-metric-instance", {"InstanceId": "i-0deadbeefdeadbeef"})
    plan = plan_for(event, fallback=NodeFallback.ALL)
    assert plan.chosen == ()
    assert "InstanceId=i-0deadbeefdeadbeef" in skipped(plan)
    assert skipped(plan)["InstanceId=i-0deadbeefdeadbeef"].startswith("gone")
    assert plan.fallback is None, "a node was named, so the fallback does not apply"


def test_not_ready_node_is_skipped_and_said_so() -> None:
    plan = plan_for(with_dimensions("alarm-single-metric-instance", {"InstanceId": "i-0123456789abcdef0"}))
    assert plan.chosen == ()
    assert skipped(plan) == {NODE_C: NOT_READY}


@pytest.mark.parametrize(
    ("sample", "dimensions"),
    [
        ("alarm-composite", None),
        ("alarm-container-insights-node", {"ClusterName": CLUSTER}),
        (
            "alarm-container-insights-node",
            {"ClusterName": CLUSTER, "Namespace": "payments", "Service": "checkout"},
        ),
        ("alarm-single-metric-instance", {}),
        ("alarm-container-insights-node", {"ClusterName": "other-cluster", "NodeName": NODE_A}),
    ],
)
def test_alarm_naming_no_node_of_this_cluster_uses_the_fallback(
    sample: str, dimensions: dict[str, str] | None
) -> None:
    event = alarm(sample) if dimensions is None else with_dimensions(sample, dimensions)
    nothing = plan_for(event, fallback=NodeFallback.NONE)
    assert nothing.chosen == ()
    assert nothing.fallback is NodeFallback.NONE
    assert nothing.notes
    everything = plan_for(event, fallback=NodeFallback.ALL)
    assert set(everything.node_names) == {NODE_A, NODE_B, NODE_D}
    assert skipped(everything) == {NODE_C: NOT_READY}
    assert everything.fallback is NodeFallback.ALL


@pytest.mark.parametrize("max_nodes", [1, 2, 3])
def test_fallback_to_all_nodes_stops_at_the_cap(max_nodes: int) -> None:
    plan = plan_for(alarm("alarm-composite"), fallback=NodeFallback.ALL, max_nodes=max_nodes)
    assert len(plan.chosen) == max_nodes
    over = [target for target, reason in skipped(plan).items() if reason == over_cap(max_nodes)]
    assert len(over) == 3 - max_nodes
    assert set(plan.node_names) | set(over) == {NODE_A, NODE_B, NODE_D}


def test_plans_are_deterministic_whatever_the_snapshot_order() -> None:
    event = alarm("alarm-composite")
    forward = targets_for_alarm(event, NODES, PODS, cluster=CLUSTER, fallback=NodeFallback.ALL, max_nodes=2)
    backward = targets_for_alarm(
        event, NODES[::-1], PODS[::-1], cluster=CLUSTER, fallback=NodeFallback.ALL, max_nodes=2
    )
    assert forward == backward


def test_a_chosen_node_can_be_skipped_later_with_a_reason() -> None:
    plan = plan_for(alarm("alarm-metric-math"))
    later = plan.skip(NODE_A, "already capturing in cap-20261125T100000Z-0badcafe")
    assert later.node_names == (NODE_B,)
    assert skipped(later)[NODE_A] == "already capturing in cap-20261125T100000Z-0badcafe"
    assert plan.node_names == (NODE_A, NODE_B), "plans are immutable"
    with pytest.raises(KeyError):
        later.skip(NODE_A, "twice")


def test_plan_serialises_to_json_for_the_session_item() -> None:
    plan = plan_for(alarm("alarm-composite"), fallback=NodeFallback.ALL, max_nodes=1)
    data = json.loads(json.dumps(plan.to_dict()))
    assert [n["node"] for n in data["nodes"]] == list(plan.node_names)
    assert {s["target"] for s in data["skipped"]} == set(skipped(plan))
    assert data["fallback"] == "all"


def request(name: str, **target_changes: Any) -> StartCapture:
    raw = load_event(name)
    raw["detail"]["targets"].update(target_changes)
    event = parse_event(raw)
    assert isinstance(event, StartCapture)
    return event


@pytest.mark.parametrize(
    ("sample", "nodes", "how"),
    [
        ("start-capture-nodes", {NODE_A, NODE_B}, "node name"),
        ("start-capture-instances", {NODE_A}, "instance id i-0a1b2c3d4e5f60718"),
        ("start-capture-label-selector", {NODE_A, NODE_B}, "node selector"),
        ("start-capture-pod-selector", {NODE_A, NODE_B}, "pod selector payments/"),
        ("start-capture-all", {NODE_A, NODE_B, NODE_D}, "all nodes"),
    ],
)
def test_start_request_captures_on_the_nodes_it_names(sample: str, nodes: set[str], how: str) -> None:
    plan = targets_for_request(request(sample).detail, NODES, PODS, max_nodes=10)
    assert set(plan.node_names) == nodes
    assert all(any(h.startswith(how) for h in match.matched_by) for match in plan.chosen)


def test_start_request_reports_missing_nodes_instances_and_unscheduled_pods() -> None:
    event = request(
        "start-capture-nodes",
        nodes=[NODE_A, "ip-10-9-9-9.ec2.internal", NODE_C],
        instance_ids=["i-0deadbeefdeadbeef"],
        pod_selector={"namespace": "payments", "matchLabels": {"app.kubernetes.io/name": "checkout"}},
    )
    plan = targets_for_request(event.detail, NODES, PODS, max_nodes=10)
    assert set(plan.node_names) == {NODE_A, NODE_B}
    reasons = skipped(plan)
    assert reasons["ip-10-9-9-9.ec2.internal"] == GONE
    assert reasons["i-0deadbeefdeadbeef"].startswith("gone")
    assert reasons[NODE_C] == NOT_READY
    assert any("checkout-7f9c8d6b5-pend1" in note for note in plan.notes)
    node_a = next(m for m in plan.chosen if m.node.name == NODE_A)
    assert len(node_a.matched_by) == 2, "matched by name and by the pod it hosts"


@pytest.mark.parametrize(
    ("targets", "note"),
    [
        (
            {"nodes": [], "node_selector": {"matchLabels": {"eks.amazonaws.com/nodegroup": "none"}}},
            "matches no node",
        ),
        (
            {"nodes": [], "pod_selector": {"namespace": "payments", "matchLabels": {"app": "nope"}}},
            "matches no pod",
        ),
    ],
)
def test_selector_that_matches_nothing_leaves_a_note(targets: dict[str, Any], note: str) -> None:
    plan = targets_for_request(request("start-capture-nodes", **targets).detail, NODES, PODS, max_nodes=10)
    assert plan.chosen == ()
    assert any(note in n for n in plan.notes)


def test_start_request_stops_at_the_cap_in_name_order() -> None:
    plan = targets_for_request(request("start-capture-all").detail, NODES, PODS, max_nodes=2)
    assert plan.node_names == tuple(sorted([NODE_A, NODE_B, NODE_D])[:2])
