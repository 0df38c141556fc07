"""An alarm on AutoScalingGroupName captures on the group's members by fact, in the local cloud.

Auto Scaling groups and their instances are real in moto's EC2 and Auto Scaling (which tags each instance
it launches with ``aws:autoscaling:groupName``); the cluster's nodes carry those instances' ids in their
providerID. Groups: EKS managed node groups ``ng`` and ``ng-2`` (whose ASG names share the ``eks-ng-``
prefix), a self-managed group, and a Karpenter-style node (its own instance, launched by no group).
"""

from __future__ import annotations

from typing import Any

import boto3

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.kube.labels import LABEL_CAPTURE_ID
from localcloud.aws import MotoServer
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from tests.events import load_event
from tests.fixtures.sessions import stored_session

NAMESPACE = "eks-capture"
NG = "eks-ng-20261101-a1b2c3d4"
NG_2 = "eks-ng-2-20261101-e5f6a7b8"
SELF_MANAGED = "shop-ingress-asg"
GROUPS = {NG: ("ng-a", "ng-b"), NG_2: ("ng2-a",), SELF_MANAGED: ("ingress-a",)}
KARPENTER_NODE = "karpenter-a"  # in no group: no row of either table may take it


def node_image(ec2: Any) -> str:
    """An AMI of this account's own, registered from a snapshot (listing moto's ~1,300 public AMIs to
    pick one takes seconds)."""
    volume = ec2.create_volume(AvailabilityZone="us-west-2a", Size=8)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    root = "/dev/xvda"
    return str(
        ec2.register_image(
            Name="eks-node",
            Architecture="x86_64",
            VirtualizationType="hvm",
            RootDeviceName=root,
            BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"SnapshotId": snapshot}}],
        )["ImageId"]
    )


def launch_nodes(shop: KubeEmulator) -> None:
    """The groups of GROUPS and a Karpenter instance in moto, each instance a Ready node in ``shop``."""
    ec2, autoscaling = boto3.client("ec2"), boto3.client("autoscaling")
    image = node_image(ec2)
    ec2.create_launch_template(
        LaunchTemplateName="nodes", LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"}
    )
    for group, node_names in GROUPS.items():
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchTemplate={"LaunchTemplateName": "nodes"},
            MinSize=len(node_names),
            MaxSize=len(node_names),
            DesiredCapacity=len(node_names),
            AvailabilityZones=["us-west-2a"],
        )
        [described] = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"
        ]
        instances = sorted(instance["InstanceId"] for instance in described["Instances"])
        nodegroup = {NG: "ng", NG_2: "ng-2"}.get(group, "")
        for node_name, instance_id in zip(node_names, instances, strict=True):
            shop.add_node(node_name, instance_id=instance_id, zone="us-west-2a", nodegroup=nodegroup)
    karpenter = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.large",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "karpenter.sh/nodepool", "Value": "default"}]}
        ],
    )["Instances"][0]["InstanceId"]
    shop.add_node(KARPENTER_NODE, instance_id=karpenter, zone="us-west-2a", nodegroup="")


def asg_alarm(group: str) -> dict[str, Any]:
    """alarm-asg on ``group``, named after it (each alarm has its own cooldown)."""
    raw = load_event("alarm-asg")
    raw["id"] = f"asg-{group}"
    raw["detail"]["alarmName"] = f"eks-capture-asg-{group}"
    raw["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] = {
        "AutoScalingGroupName": group
    }
    return raw


def job_nodes(shop: KubeEmulator, capture_id: str | None) -> list[str]:
    return sorted(
        job["spec"]["template"]["spec"]["nodeName"]
        for job in shop.objects(JOBS, NAMESPACE)
        if job["metadata"]["labels"][LABEL_CAPTURE_ID] == capture_id
    )


# One cluster for each table (launching the groups takes seconds): each row is its own alarm.
MEMBERS = [(NG, ["ng-a", "ng-b"]), (NG_2, ["ng2-a"]), (SELF_MANAGED, ["ingress-a"])]
NO_MEMBERS_HERE = [
    "default",
    "eks-ng",
    "eks-general-20261101-a1b2c3d4",
]  # Karpenter nodepool, a prefix, elsewhere


def test_an_asg_alarm_captures_on_exactly_the_groups_instances(
    deps: Deps, shop: KubeEmulator, aws: MotoServer
) -> None:
    launch_nodes(shop)

    for group, nodes in MEMBERS:
        outcome = trigger.handle(asg_alarm(group), deps)

        assert outcome.status == "running", (group, outcome.message)
        assert job_nodes(shop, outcome.capture_id) == nodes, group
        session = stored_session(deps, outcome.capture_id)
        assert all(f"AutoScalingGroupName={group}" in node.matched_by for node in session.nodes.values())


def test_an_asg_alarm_on_a_group_without_members_here_captures_nothing_and_says_so(
    deps: Deps, shop: KubeEmulator, aws: MotoServer
) -> None:
    launch_nodes(shop)

    for group in NO_MEMBERS_HERE:
        outcome = trigger.handle(asg_alarm(group), deps)

        assert outcome.nodes == {}, group
        assert outcome.skipped[f"AutoScalingGroupName={group}"].startswith("gone"), group
    assert shop.objects(JOBS, NAMESPACE) == []
