"""The cluster follows the EKS API: access entries and access policies created, changed or deleted there
(and the cluster's authentication mode) change what the cluster allows within seconds, as on EKS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture.kube import eks
from localcloud.aws import ACCOUNT_ID, REGION, MotoServer
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.kube.access import CACHE_SECONDS
from tests.fixtures.kube import (
    KUBE_CLUSTER,
    PROBE_USER,
    UNAUTHORIZED_STATUS,
    core_api,
    create_access_entry,
    grant,
    role_session,
)
from tests.fixtures.waiting import eventually

PROBE_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/probe"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"


def _refusal(call: Callable[[], object]) -> tuple[int, dict[str, Any]] | None:
    """The status and body the cluster refused ``call`` with; None when it went through."""
    try:
        call()
    except ApiException as error:
        return error.status, json.loads(error.body or "{}")
    return None


def _probe(kube: KubeEmulator) -> Any:
    """CoreV1Api as IAM role ``probe``, whose entry puts it in group ``probe`` (which RBAC lets list nodes)
    and holds AmazonEKSViewPolicy on namespace ``default``."""
    create_access_entry(
        kube, "probe", groups=("probe",), policy="AmazonEKSViewPolicy", namespaces=("default",)
    )
    grant(kube, "probe", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}])
    return core_api(eks.api_client(KUBE_CLUSTER, session=role_session("probe")))


def _refused_soon(call: Callable[[], object]) -> tuple[int, dict[str, Any]]:
    return eventually(
        lambda: _refusal(call),
        timeout=CACHE_SECONDS + 5,
        what=f"the cluster still allows the call {CACHE_SECONDS + 5}s after the change",
    )


def test_an_access_entry_deleted_through_the_eks_api_is_unauthorized_within_seconds(
    kube: KubeEmulator,
) -> None:
    core = _probe(kube)
    core.list_node()

    boto3.client("eks").delete_access_entry(clusterName=KUBE_CLUSTER, principalArn=PROBE_ROLE)

    assert _refused_soon(core.list_node) == (401, UNAUTHORIZED_STATUS)
    assert kube.auth_failures[-1] == f"no access entry for {PROBE_USER}"


def test_the_creator_without_its_access_entry_is_unauthorized(kube: KubeEmulator) -> None:
    creator = str(boto3.client("sts").get_caller_identity()["Arn"])
    core = core_api(eks.api_client(KUBE_CLUSTER))
    core.list_namespace()

    boto3.client("eks").delete_access_entry(clusterName=KUBE_CLUSTER, principalArn=creator)

    assert _refused_soon(core.list_namespace) == (401, UNAUTHORIZED_STATUS)


@pytest.mark.parametrize(
    ("change", "refused", "still_allowed"),
    [
        pytest.param({"update_access_entry": {"kubernetesGroups": []}}, "nodes", "pods", id="groups-emptied"),
        pytest.param(
            {"disassociate_access_policy": {"policyArn": VIEW}}, "pods", "nodes", id="policy-disassociated"
        ),
    ],
)
def test_an_entry_changed_through_the_eks_api_loses_what_it_gave(
    kube: KubeEmulator, change: dict[str, dict[str, Any]], refused: str, still_allowed: str
) -> None:
    core = _probe(kube)
    calls = {"nodes": core.list_node, "pods": lambda: core.list_namespaced_pod("default")}
    assert [_refusal(call) for call in calls.values()] == [None, None]
    [(operation, arguments)] = change.items()

    getattr(boto3.client("eks"), operation)(clusterName=KUBE_CLUSTER, principalArn=PROBE_ROLE, **arguments)

    status, body = _refused_soon(calls[refused])
    assert (status, body["reason"]) == (403, "Forbidden")
    assert f'User "{PROBE_USER}" cannot list resource "{refused}"' in body["message"]
    assert _refusal(calls[still_allowed]) is None


def test_under_config_map_access_entries_are_ignored_and_only_the_creator_is_mapped(aws: MotoServer) -> None:
    api = boto3.client("eks")
    api.create_cluster(
        name="legacy", roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/eks", resourcesVpcConfig={"subnetIds": []}
    )
    legacy = start_kube_emulator(
        "legacy", aws.endpoint_url, REGION, str(boto3.client("sts").get_caller_identity()["Arn"])
    )
    try:

        def core_as(session: boto3.Session | None) -> Any:
            return core_api(
                client.ApiClient(legacy.configuration(eks.generate_token("legacy", session).value))
            )

        core_as(None).create_namespace({"metadata": {"name": "made-by-the-creator"}})  # system:masters
        stranger = core_as(role_session("stranger"))
        assert _refusal(stranger.list_node) == (401, UNAUTHORIZED_STATUS)
        assert legacy.auth_failures[-1] == (
            f"authentication mode CONFIG_MAP: arn:aws:sts::{ACCOUNT_ID}:assumed-role/stranger/probe "
            "is not mapped in aws-auth"
        )

        api.update_cluster_config(name="legacy", accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
        role = f"arn:aws:iam::{ACCOUNT_ID}:role/stranger"
        api.create_access_entry(clusterName="legacy", principalArn=role)
        api.associate_access_policy(
            clusterName="legacy", principalArn=role, policyArn=VIEW, accessScope={"type": "cluster"}
        )
        eventually(
            lambda: _refusal(lambda: stranger.list_namespaced_pod("default")) is None,
            timeout=CACHE_SECONDS + 5,
            what="the access entry made after leaving CONFIG_MAP is not honoured",
        )
    finally:
        legacy.stop()
