"""Auto Scaling group members by fact: the instances EC2 tags as members, never a guess from a group's name.

An alarm on ``AutoScalingGroupName`` names a group, whatever made it (an EKS managed node group, a
self-managed group, another tool). Auto Scaling tags every instance it launches with
``aws:autoscaling:groupName``; EC2's tag filter matches the value exactly, so group ``ng`` never takes the
instances of ``ng-2``, and an instance no group launched (Karpenter's) is in none.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from eks_capture.events.models import Metric

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef

GROUP_DIMENSION = "AutoScalingGroupName"
GROUP_TAG = "aws:autoscaling:groupName"
LIVE_STATES = ("pending", "running")


def named_groups(metrics: Iterable[Metric]) -> set[str]:
    """The Auto Scaling groups an alarm's metrics name."""
    return {metric.dimensions[GROUP_DIMENSION] for metric in metrics if GROUP_DIMENSION in metric.dimensions}


def group_members(ec2: EC2Client, groups: Collection[str]) -> dict[str, str]:
    """Instance id -> group, for the pending or running instances EC2 tags as members of ``groups``."""
    if not groups:
        return {}
    filters: list[FilterTypeDef] = [
        {"Name": f"tag:{GROUP_TAG}", "Values": sorted(groups)},
        {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
    ]
    members: dict[str, str] = {}
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                members[instance["InstanceId"]] = tags[GROUP_TAG]
    return members
