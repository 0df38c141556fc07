"""``eks-capture manifests``: the in-cluster objects for a deployed stack's own names, applied by kubectl."""

from __future__ import annotations

import json

import boto3
import yaml
from typer.testing import CliRunner

from eks_capture_cli import app
from localcloud.aws import MotoServer
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import ROLEBINDINGS, SERVICEACCOUNTS
from localcloud.kubectl import Kubectl

PARAMETERS = {"CaptureNamespace": "netdebug", "CaptureServiceAccount": "pcap-writer"}


def _deploy_stack_with(parameters: dict[str, str]) -> None:
    """A CloudFormation stack in moto whose parameters are ``parameters`` (its resources do not matter)."""
    template = {
        "Parameters": {name: {"Type": "String"} for name in parameters},
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
    }
    boto3.client("cloudformation").create_stack(
        StackName="eks-capture",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )


def test_the_manifests_of_a_stack_carry_its_namespace_and_service_account(
    aws: MotoServer, kube: KubeEmulator, kubectl: Kubectl
) -> None:
    _deploy_stack_with(PARAMETERS)

    printed = CliRunner().invoke(app, ["manifests", "--stack", "eks-capture"])
    assert printed.exit_code == 0, printed.output
    kubectl.apply(printed.stdout)

    assert kube.get(SERVICEACCOUNTS, "netdebug", "pcap-writer") is not None
    assert sorted(b["metadata"]["name"] for b in kube.objects(ROLEBINDINGS, "netdebug")) == [
        "eks-capture-teardown",
        "eks-capture-trigger",
    ]
    ask = ("auth", "can-i", "create", "jobs.batch", "-n", "netdebug", "--as", "lambda")
    assert kubectl.run(*ask, "--as-group", "eks-capture-trigger").stdout == "yes\n"
    assert kubectl.run(*ask, "--as-group", "eks-capture-teardown").stdout == "no\n"


def test_explicit_names_win_over_the_stacks(aws: MotoServer) -> None:
    _deploy_stack_with(PARAMETERS)

    printed = CliRunner().invoke(app, ["manifests", "--stack", "eks-capture", "--namespace", "caps"])

    documents = list(yaml.safe_load_all(printed.stdout))
    namespaced = [d for d in documents if not d["kind"].startswith("Cluster")]
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in namespaced} == {"caps"}
    assert [d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount"] == ["pcap-writer"]
