"""Who the stack's functions are in AWS and in the cluster: their roles' sessions and the access entries.

In AWS a function runs with its execution role's credentials (a session named after the function), and
EKS maps that role to Kubernetes through the template's ``AWS::EKS::AccessEntry`` resources. The local
cloud does both: each function's process gets credentials from sts:AssumeRole on its role, and the
template's access entries are created in the local EKS API (localcloud/provision.py), which the
emulated cluster reads as EKS does (localcloud/kube/access.py).
"""

from __future__ import annotations

import boto3

from eks_capture.kube.eks import generate_token
from eks_capture_cli.cluster_manifests import render, stack_names
from localcloud.kube import KubeEmulator
from localcloud.kubectl import Kubectl
from localcloud.provision import provision_cluster
from localcloud.template import Stack, physical_name


def function_role_arn(stack: Stack, function: str) -> str:
    """The execution role ARN of one of the stack's functions: its ``Role`` property, else the role SAM
    creates for it (logical id ``<function>Role``)."""
    role = stack.resources[function]["Properties"].get("Role")
    if role is None:
        return f"arn:aws:iam::{stack.account_id}:role/{physical_name(stack.name, function + 'Role')}"
    return str(stack.resolve(role))


def role_credentials(role_arn: str, session_name: str) -> dict[str, str]:
    """Temporary credentials of ``role_arn`` as environment variables (what Lambda gives a function)."""
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])[
        "Credentials"
    ]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def function_session(stack: Stack, function: str) -> boto3.Session:
    """A boto3 session with the function's role credentials, named after the function as Lambda does."""
    env = role_credentials(function_role_arn(stack, function), stack.name_of(function))
    return boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        region_name=stack.region,
    )


def kubectl_as(emulator: KubeEmulator, session: boto3.Session | None = None) -> Kubectl:
    """kubectl as the caller of ``session`` (by default this process's identity, the cluster's creator)."""
    return emulator.kubectl(generate_token(emulator.cluster_name, session).value)


def install_stack(emulator: KubeEmulator, stack: Stack) -> str:
    """What deploying the stack does once per cluster: CloudFormation creates its access entries (and Pod
    Identity associations) in EKS, and the operator, as the cluster's creator, runs ``eks-capture
    manifests --stack ... | kubectl apply -f -`` (for the template's defaults, exactly
    deploy/kubernetes/: a unit test compares them). kubectl's output, one line per object, for whoever
    shows the set-up (the demo)."""
    provision_cluster(stack, emulator.cluster_name)
    return kubectl_as(emulator).apply(render(stack_names(stack.values)))
