"""Fargate and Windows nodes cannot host a capture pod: every targeting path skips them with a reason, and
they never take a place under the per-capture cap."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.captures.targets import TargetPlan, targets_for_alarm, targets_for_request
from eks_capture.events.models import AlarmStateChange, StartCapture, parse_event
from eks_capture.kube.nodes import NodeInfo, PodInfo
from eks_capture.settings import NodeFallback
from tests.events import load_event

GENERAL = {"eks.amazonaws.com/nodegroup": "general", "topology.kubernetes.io/zone": "us-west-2a"}
# The Auto Scaling group of alarm-asg, as the trigger sets it on nodes from their instances' EC2 tags.
ASG = "eks-general-20261101-a1b2c3d4"
LINUX = NodeInfo(
    "ip-192-168-12-34.us-west-2.compute.internal", "i-0fedcba9876543210", labels=GENERAL, asg_name=ASG
)
FARGATE = NodeInfo(
    "fargate-ip-192-168-5-6.us-west-2.compute.internal",
    labels={**GENERAL, "eks.amazonaws.com/compute-type": "fargate"},
    asg_name=ASG,
)
WINDOWS = NodeInfo(
    "ip-192-168-3-3.us-west-2.compute.internal",
    "i-0a1b2c3d4e5f60718",
    labels={**GENERAL, "kubernetes.io/os": "windows"},
    asg_name=ASG,
)
NODES = [LINUX, FARGATE, WINDOWS]
PODS = [
    PodInfo(f"checkout-{index}", "payments", {"app.kubernetes.io/name": "checkout"}, node.name)
    for index, node in enumerate(NODES)
]
FARGATE_REASON = "Fargate (eks.amazonaws.com/compute-type=fargate): no hostNetwork pods, so no capture"
WINDOWS_REASON = "not Linux (kubernetes.io/os=windows): the capture agent is a Linux image"


def request(name: str, max_nodes: int = 10, **targets: Any) -> TargetPlan:
    raw = load_event(name)
    raw["detail"]["targets"].update(targets)
    event = parse_event(raw)
    assert isinstance(event, StartCapture)
    return targets_for_request(event.detail, NODES, PODS, max_nodes=max_nodes)


def alarm(name: str, fallback: NodeFallback = NodeFallback.NONE) -> TargetPlan:
    event = parse_event(load_event(name))
    assert isinstance(event, AlarmStateChange)
    return targets_for_alarm(event, NODES, PODS, cluster="shop-prod", fallback=fallback, max_nodes=10)


@pytest.mark.parametrize(
    ("plan", "skipped"),
    [
        pytest.param(lambda: request("start-capture-all"), {FARGATE, WINDOWS}, id="all-nodes"),
        pytest.param(
            lambda: request("start-capture-nodes", nodes=[n.name for n in NODES]),
            {FARGATE, WINDOWS},
            id="names",
        ),
        pytest.param(lambda: request("start-capture-label-selector"), {FARGATE, WINDOWS}, id="node-selector"),
        pytest.param(lambda: request("start-capture-pod-selector"), {FARGATE, WINDOWS}, id="pod-selector"),
        pytest.param(
            lambda: request("start-capture-instances", instance_ids=[WINDOWS.instance_id]),
            {WINDOWS},
            id="instance",
        ),
        pytest.param(lambda: alarm("alarm-single-metric-instance"), {WINDOWS}, id="alarm-instance-id"),
        pytest.param(lambda: alarm("alarm-asg"), {FARGATE, WINDOWS}, id="alarm-auto-scaling-group"),
        pytest.param(
            lambda: alarm("alarm-composite", NodeFallback.ALL), {FARGATE, WINDOWS}, id="alarm-fallback-to-all"
        ),
    ],
)
def test_every_targeting_path_skips_fargate_and_windows_nodes_saying_why(
    plan: Any, skipped: set[NodeInfo]
) -> None:
    made: TargetPlan = plan()
    reasons = {s.target: s.reason for s in made.skipped}
    assert not {FARGATE.name, WINDOWS.name} & set(made.node_names)
    expected = {FARGATE.name: FARGATE_REASON, WINDOWS.name: WINDOWS_REASON}
    assert reasons == {node.name: expected[node.name] for node in skipped}


def test_a_skipped_fargate_or_windows_node_takes_no_place_under_the_cap() -> None:
    plan = request("start-capture-all", max_nodes=1)
    assert plan.node_names == (LINUX.name,)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({}, None),
        ({"kubernetes.io/os": "linux", "eks.amazonaws.com/compute-type": "ec2"}, None),
        ({"eks.amazonaws.com/compute-type": "fargate"}, FARGATE_REASON),
        ({"kubernetes.io/os": "windows"}, WINDOWS_REASON),
    ],
)
def test_a_node_says_why_it_cannot_host_a_capture(labels: dict[str, str], reason: str | None) -> None:
    assert NodeInfo("n", labels=labels).cannot_capture == reason
