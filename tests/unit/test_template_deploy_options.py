"""The deploy options on the template CloudFormation receives: the image repository and the digest rule,
functions in the cluster's VPC, and the teardown's retries."""

from __future__ import annotations

from typing import Any

import pytest

from eks_capture.errors import SettingsInvalid
from eks_capture.settings import Settings
from localcloud.aws import ACCOUNT_ID, REGION
from localcloud.template import Stack, TemplateError
from tests.sam_transform import active_resources, deployed, properties, role_statements

FUNCTIONS = ("TriggerFunction", "TeardownFunction", "IndexerFunction", "ReportFunction")
FUNCTION_ROLES = ("TriggerRole", "TeardownRole", "IndexerRole", "ReportRole")
DIGEST = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64
TAG = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture:v1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0b5c3e2a-1f4d-4c8e-9a7b-2d6e8f0a1b3c"
SUBNETS = "subnet-0a1b2c3d4e5f60718,subnet-0fedcba9876543210"
GROUPS = "sg-0123456789abcdef0"
ENI_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}


def function_settings(stack: Stack) -> Settings:
    """The settings the trigger reads at cold start from its environment (Globals' variables and its own)."""
    variables = properties(stack, "TriggerFunction")["Environment"]["Variables"]
    return Settings.from_env({name: str(value) for name, value in variables.items()})


def _repositories(stack: Stack) -> dict[str, dict[str, Any]]:
    return active_resources(stack, "AWS::ECR::Repository")


def test_by_default_the_stack_creates_no_image_repository() -> None:
    stack = deployed()

    assert not _repositories(stack)
    assert not stack.condition(stack.template["Outputs"]["CaptureImageRepositoryUri"]["Condition"])


def test_the_created_repository_has_immutable_tags_scans_on_push_outlives_the_stack_and_is_an_output() -> (
    None
):
    stack = deployed(CreateImageRepository="true")

    [(logical_id, resource)] = _repositories(stack).items()
    props = properties(stack, logical_id)
    assert props["ImageTagMutability"] == "IMMUTABLE"
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["EncryptionConfiguration"] == {"EncryptionType": "AES256"}
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    output = stack.template["Outputs"]["CaptureImageRepositoryUri"]
    assert stack.condition(output["Condition"])
    assert output["Value"] == {"Fn::GetAtt": [logical_id, "RepositoryUri"]}


def test_the_created_repository_uses_the_stacks_kms_key_when_one_is_given() -> None:
    stack = deployed(CreateImageRepository="true", KmsKeyArn=KEY)

    [logical_id] = _repositories(stack)
    assert properties(stack, logical_id)["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": KEY,
    }


def test_an_empty_image_is_refused_unless_the_stack_creates_the_repository() -> None:
    with pytest.raises(TemplateError, match="CaptureImageUri is required unless"):
        deployed(CaptureImageUri="")
    stack = deployed(CaptureImageUri="", CreateImageRepository="true")

    assert function_settings(stack).capture_image is None


@pytest.mark.parametrize(
    "uri",
    [
        "image with spaces",
        "Registry.example.com/UPPER@sha256:" + "0" * 64,
        "repo@sha256:short",
        "repo@md5:00",
    ],
)
def test_an_image_that_is_no_image_reference_is_refused_by_the_parameters_pattern(uri: str) -> None:
    with pytest.raises(TemplateError, match="must be an image reference"):
        deployed(CaptureImageUri=uri)


def test_the_functions_refuse_a_tag_at_cold_start_unless_the_stack_allows_tags() -> None:
    refused = deployed(CaptureImageUri=TAG)
    allowed = deployed(CaptureImageUri=TAG, AllowImageTags="true")

    with pytest.raises(SettingsInvalid) as raised:
        function_settings(refused)
    assert raised.value.variable == "CAPTURE_IMAGE"
    assert "pinned by digest" in str(raised.value)
    assert function_settings(allowed).capture_image == TAG
    assert function_settings(deployed(CaptureImageUri=DIGEST)).capture_image == DIGEST


def test_without_subnets_the_functions_run_outside_any_vpc_with_no_network_interface_permission() -> None:
    stack = deployed()

    for function_id in FUNCTIONS:
        assert "VpcConfig" not in properties(stack, function_id), function_id
    for role_id in FUNCTION_ROLES:
        actions = {action for statement in role_statements(stack, role_id) for action in statement["Action"]}
        assert not actions & ENI_ACTIONS, role_id
    assert not active_resources(stack, "AWS::IAM::ManagedPolicy").keys() & {"FunctionNetworkInterfacePolicy"}


def test_with_subnets_every_function_runs_in_them_and_its_role_gains_only_the_network_interface_actions() -> (
    None
):
    outside = deployed()
    inside = deployed(FunctionSubnetIds=SUBNETS, FunctionSecurityGroupIds=GROUPS)

    for function_id in FUNCTIONS:
        assert properties(inside, function_id)["VpcConfig"] == {
            "SubnetIds": SUBNETS.split(","),
            "SecurityGroupIds": [GROUPS],
        }, function_id
    for role_id in FUNCTION_ROLES:
        before = role_statements(outside, role_id)
        after = role_statements(inside, role_id)
        added = [statement for statement in after if statement not in before]
        assert len(after) == len(before) + 1, role_id
        [eni] = added
        assert set(eni["Action"]) == ENI_ACTIONS
        assert eni["Resource"] == ["*"]  # Lambda checks these on "*" before it creates the function
        assert "Condition" not in eni


@pytest.mark.parametrize(
    ("subnets", "groups"),
    [(SUBNETS, ""), ("", GROUPS), (f"{SUBNETS},", GROUPS)],
    ids=["subnets-alone", "groups-alone", "an-empty-subnet-item"],
)
def test_subnets_and_security_groups_are_refused_one_without_the_other(subnets: str, groups: str) -> None:
    with pytest.raises(TemplateError, match="given together"):
        deployed(FunctionSubnetIds=subnets, FunctionSecurityGroupIds=groups)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("FunctionSubnetIds", "vpc-0a1b2c3d"), ("FunctionSecurityGroupIds", "subnet-0a1b2c3d")],
)
def test_ids_of_the_wrong_kind_are_refused_by_the_parameters_pattern(parameter: str, value: str) -> None:
    other = {"FunctionSubnetIds": SUBNETS, "FunctionSecurityGroupIds": GROUPS}
    with pytest.raises(TemplateError, match=parameter):
        deployed(**{**other, parameter: value})


def test_a_sweep_lambda_could_not_run_is_not_retried_past_the_next_sweep() -> None:
    stack = deployed()

    configs = [
        properties(stack, logical_id)
        for logical_id in active_resources(stack, "AWS::Lambda::EventInvokeConfig")
    ]
    [teardown] = [
        config for config in configs if config["FunctionName"] == stack.physical_id("TeardownFunction")
    ]
    assert teardown["MaximumRetryAttempts"] == 0
    assert teardown["MaximumEventAgeInSeconds"] == 60
    assert properties(stack, "TeardownFunction")["ReservedConcurrentExecutions"] == 1
