"""The local cloud's EKS answers what moto lacks as EKS does: access entries, add-ons, Pod Identity
associations, the authentication mode (and its refusals), and the stack's own entries once deployed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.aws import MotoServer
from localcloud.cloud import POD_IDENTITY_AGENT, create_eks_cluster
from localcloud.provision import provision_cluster
from localcloud.template import Stack
from tests.fixtures.stack import CLUSTER

if TYPE_CHECKING:
    from mypy_boto3_eks.type_defs import CreateAccessConfigRequestTypeDef

ROLE = "arn:aws:iam::123456789012:role/someone"


def _refusal(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def _caller() -> str:
    return str(boto3.client("sts").get_caller_identity()["Arn"])


def _cluster(name: str, mode: str | None = None) -> Any:
    eks = boto3.client("eks")
    extra: dict[str, Any] = {"accessConfig": {"authenticationMode": mode}} if mode else {}
    eks.create_cluster(
        name=name, roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []}, **extra
    )
    return eks


def test_a_cluster_created_through_the_api_defaults_to_config_map_and_refuses_access_entries(
    aws: MotoServer,
) -> None:
    eks = _cluster("legacy")

    assert (
        eks.describe_cluster(name="legacy")["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
    )
    assert _refusal(eks.create_access_entry, clusterName="legacy", principalArn=ROLE) == (
        "InvalidParameterException",
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this "
        "operation.",
    )


def test_the_authentication_mode_only_moves_towards_api(aws: MotoServer) -> None:
    eks = _cluster("moving", "API_AND_CONFIG_MAP")

    assert _refusal(
        eks.update_cluster_config, name="moving", accessConfig={"authenticationMode": "CONFIG_MAP"}
    ) == (
        "InvalidParameterException",
        "Unsupported authentication mode update from API_AND_CONFIG_MAP to CONFIG_MAP",
    )
    eks.update_cluster_config(name="moving", accessConfig={"authenticationMode": "API"})
    assert eks.describe_cluster(name="moving")["cluster"]["accessConfig"]["authenticationMode"] == "API"


def test_an_access_entry_gets_eks_username_for_a_role_its_policies_and_is_deleted(aws: MotoServer) -> None:
    eks = _cluster("c", "API")
    eks.create_access_entry(clusterName="c", principalArn=ROLE, kubernetesGroups=["g"])
    eks.associate_access_policy(
        clusterName="c",
        principalArn=ROLE,
        policyArn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        accessScope={"type": "namespace", "namespaces": ["x"]},
    )

    entry = eks.describe_access_entry(clusterName="c", principalArn=ROLE)["accessEntry"]
    assert (entry["username"], entry["kubernetesGroups"], entry["type"]) == (
        "arn:aws:sts::123456789012:assumed-role/someone/{{SessionName}}",
        ["g"],
        "STANDARD",
    )
    [policy] = eks.list_associated_access_policies(clusterName="c", principalArn=ROLE)[
        "associatedAccessPolicies"
    ]
    assert policy["accessScope"] == {"type": "namespace", "namespaces": ["x"]}
    assert (
        _refusal(eks.create_access_entry, clusterName="c", principalArn=ROLE)[0] == "ResourceInUseException"
    )

    eks.delete_access_entry(clusterName="c", principalArn=ROLE)
    assert eks.list_access_entries(clusterName="c")["accessEntries"] == [_caller()]  # the creator's
    assert _refusal(eks.describe_access_entry, clusterName="c", principalArn=ROLE) == (
        "ResourceNotFoundException",
        "The specified principalArn could not be found. "
        "You can view your available access entries with 'list-access-entries'.",
    )


@pytest.mark.parametrize(("bootstrap", "entries"), [(None, 1), (True, 1), (False, 0)])
def test_the_clusters_creator_gets_an_admin_access_entry_unless_told_not_to(
    aws: MotoServer, bootstrap: bool | None, entries: int
) -> None:
    eks = boto3.client("eks")
    config: CreateAccessConfigRequestTypeDef = {"authenticationMode": "API"}
    if bootstrap is not None:
        config["bootstrapClusterCreatorAdminPermissions"] = bootstrap
    eks.create_cluster(name="c", roleArn=ROLE, resourcesVpcConfig={"subnetIds": []}, accessConfig=config)

    assert eks.list_access_entries(clusterName="c")["accessEntries"] == [_caller()][:entries]
    if entries:
        [policy] = eks.list_associated_access_policies(clusterName="c", principalArn=_caller())[
            "associatedAccessPolicies"
        ]
        assert (policy["policyArn"], policy["accessScope"]) == (
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
            {"type": "cluster"},
        )


def test_an_unknown_access_policy_is_refused(aws: MotoServer) -> None:
    eks = _cluster("c", "API")
    eks.create_access_entry(clusterName="c", principalArn=ROLE)

    code, _ = _refusal(
        eks.associate_access_policy,
        clusterName="c",
        principalArn=ROLE,
        policyArn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSRootPolicy",
        accessScope={"type": "cluster"},
    )
    assert code == "InvalidParameterException"


def test_a_missing_addon_is_not_found_in_eks_words(aws: MotoServer) -> None:
    eks = _cluster("c", "API")

    assert _refusal(eks.describe_addon, clusterName="c", addonName=POD_IDENTITY_AGENT) == (
        "ResourceNotFoundException",
        f"No addon: {POD_IDENTITY_AGENT} found in cluster: c",
    )


def test_the_deployed_stack_has_its_access_entries_and_pod_identity_association(
    aws: MotoServer, stack: Stack
) -> None:
    create_eks_cluster(CLUSTER)
    provision_cluster(stack, CLUSTER)
    eks = boto3.client("eks")

    assert eks.list_access_entries(clusterName=CLUSTER)["accessEntries"] == sorted(
        [_caller(), stack.arn("TriggerRole"), stack.arn("TeardownRole")]  # and EKS's entry for the creator
    )
    [association] = eks.list_pod_identity_associations(clusterName=CLUSTER)["associations"]
    described = eks.describe_pod_identity_association(
        clusterName=CLUSTER, associationId=association["associationId"]
    )["association"]
    assert (described["namespace"], described["serviceAccount"], described["roleArn"]) == (
        stack.values["CaptureNamespace"],
        stack.values["CaptureServiceAccount"],
        stack.arn("CapturePodRoleshopprod"),
    )
    assert (
        eks.describe_addon(clusterName=CLUSTER, addonName=POD_IDENTITY_AGENT)["addon"]["status"] == "ACTIVE"
    )


def test_the_bucket_answers_its_eventbridge_setting(aws: MotoServer, stack: Stack) -> None:
    configuration = boto3.client("s3").get_bucket_notification_configuration(
        Bucket=stack.name_of("CaptureBucket")
    )

    assert configuration["EventBridgeConfiguration"] == {}
