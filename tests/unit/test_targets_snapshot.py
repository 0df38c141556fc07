"""Cluster snapshots: nodes and pods read from the API's JSON into the facts targeting uses."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.kube.nodes import NodeInfo, PodInfo, Taint, parse_provider_id


@pytest.mark.parametrize(
    ("provider_id", "zone", "instance"),
    [
        ("aws:///us-west-2a/i-0a1b2c3d4e5f60718", "us-west-2a", "i-0a1b2c3d4e5f60718"),
        ("aws:///eu-central-1c/i-12345678", "eu-central-1c", "i-12345678"),
        ("aws:////i-0a1b2c3d4e5f60718", None, "i-0a1b2c3d4e5f60718"),
        ("aws:///us-west-2a/fargate-ip-192-168-1-1", None, None),
        ("kind://docker/kind/kind-control-plane", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_instance_and_zone_come_from_the_provider_id(
    provider_id: str | None, zone: str | None, instance: str | None
) -> None:
    assert parse_provider_id(provider_id) == (zone, instance)


def node(**spec_status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "us-west-2b"}},
        **spec_status,
    }


@pytest.mark.parametrize(
    ("conditions", "ready"),
    [
        ([{"type": "Ready", "status": "True"}], True),
        ([{"type": "Ready", "status": "False"}], False),
        ([{"type": "Ready", "status": "Unknown"}], False),
        ([{"type": "DiskPressure", "status": "True"}], False),
        ([], False),
    ],
)
def test_node_is_ready_only_when_its_ready_condition_is_true(
    conditions: list[dict[str, str]], ready: bool
) -> None:
    assert NodeInfo.from_kubernetes(node(status={"conditions": conditions})).ready is ready


def test_node_snapshot_keeps_taints_addresses_and_falls_back_to_the_zone_label() -> None:
    info = NodeInfo.from_kubernetes(
        node(
            spec={
                "providerID": "aws:////i-0a1b2c3d4e5f60718",
                "taints": [{"key": "gpu", "effect": "NoSchedule"}],
            },
            status={"addresses": [{"type": "InternalIP", "address": "192.168.3.4"}]},
        ),
        asg_name="eks-general-x",
    )
    assert info.instance_id == "i-0a1b2c3d4e5f60718"
    assert info.zone == "us-west-2b"
    assert info.taints == (Taint("gpu", "NoSchedule"),)
    assert [(a.type, a.address) for a in info.addresses] == [("InternalIP", "192.168.3.4")]
    assert info.asg_name == "eks-general-x"


@pytest.mark.parametrize(
    ("owners", "labels", "workload"),
    [
        (
            [{"kind": "ReplicaSet", "name": "api-7f9c8d6b5", "controller": True}],
            {"pod-template-hash": "7f9c8d6b5"},
            "api",
        ),
        (
            [{"kind": "ReplicaSet", "name": "api-v2-66b4", "controller": True}],
            {"pod-template-hash": "66b4"},
            "api-v2",
        ),
        ([{"kind": "ReplicaSet", "name": "bare-rs", "controller": True}], {}, "bare-rs"),
        ([{"kind": "StatefulSet", "name": "ledger", "controller": True}], {}, "ledger"),
        ([{"kind": "DaemonSet", "name": "aws-node", "controller": True}], {}, "aws-node"),
        (
            [{"kind": "ConfigMap", "name": "x"}, {"kind": "Job", "name": "backup-28901", "controller": True}],
            {},
            "backup-28901",
        ),
        ([], {}, None),
    ],
)
def test_pod_workload_is_what_container_insights_calls_pod_name(
    owners: list[dict[str, Any]], labels: dict[str, str], workload: str | None
) -> None:
    pod = PodInfo.from_kubernetes(
        {"metadata": {"name": "p", "namespace": "ns", "labels": labels, "ownerReferences": owners}}
    )
    assert pod.workload == workload


def test_pod_without_namespace_or_node_reads_as_default_and_unscheduled() -> None:
    pod = PodInfo.from_kubernetes({"metadata": {"name": "p"}, "spec": {}})
    assert (pod.namespace, pod.node_name) == ("default", None)


def test_snapshots_are_hashable_values_so_they_can_key_sets_and_caches() -> None:
    first = NodeInfo("n1", labels={"a": "1"}, taints=(Taint("k", "NoSchedule"),))
    same = NodeInfo("n1", labels={"a": "1"}, taints=(Taint("k", "NoSchedule"),))
    assert {first, same} == {first}
    assert len({PodInfo("p", "ns", labels={"a": "1"}), PodInfo("p", "ns", labels={"a": "1"})}) == 1
