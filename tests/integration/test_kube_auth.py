"""EKS authentication and RBAC through the official client: tokens verified via STS, 401 and 403 bodies."""

from __future__ import annotations

import base64
import datetime
import urllib.parse
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture.errors import ClusterAccessDenied, ClusterNotFound
from eks_capture.kube import eks
from localcloud.aws import REGION, MotoServer
from localcloud.cloud import create_eks_cluster
from localcloud.kube import KubeEmulator, combined_env, start_kube_emulator
from localcloud.kube.resources import CLUSTERROLES
from tests.fixtures.kube import (
    KUBE_CLUSTER,
    PROBE_USER,
    UNAUTHORIZED_STATUS,
    batch_api,
    core_api,
    create_access_entry,
    restricted_client,
    role_session,
)

POD = {"metadata": {"name": "probe"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _caller_arn() -> str:
    return str(boto3.client("sts").get_caller_identity()["Arn"])


def _status(error: ApiException) -> dict[str, object]:
    import json

    body: dict[str, object] = json.loads(error.body or "{}")
    return body


def _retoken(token: str, **changes: str) -> str:
    """The same presigned URL with query parameters replaced (which voids its signature)."""
    encoded = token.removeprefix(eks.TOKEN_PREFIX)
    url = urllib.parse.urlsplit(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = dict(urllib.parse.parse_qsl(url.query))
    query.update(changes)
    rebuilt = url._replace(query=urllib.parse.urlencode(query)).geturl()
    return eks.TOKEN_PREFIX + base64.urlsafe_b64encode(rebuilt.encode()).decode().rstrip("=")


def _raw_core(kube: KubeEmulator, token: str | None) -> Any:
    configuration = kube.configuration(token or "")
    if token is None:
        configuration.api_key = {}
    return core_api(client.ApiClient(configuration))


def test_token_from_own_credentials_lists_nodes_with_aws_provider_ids(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube.add_node("node-a", instance_id="i-0123456789abcdef0", zone="eu-west-1b")
    nodes = core_api(kube_client).list_node().items
    assert [(n.metadata.name, n.spec.provider_id) for n in nodes] == [
        ("node-a", "aws:///eu-west-1b/i-0123456789abcdef0")
    ]


def test_kubeconfig_written_by_the_emulator_works_with_the_official_loader(
    kube: KubeEmulator, tmp_path: object
) -> None:
    from pathlib import Path

    from kubernetes import config

    path = kube.write_kubeconfig(Path(str(tmp_path)) / "kubeconfig", eks.generate_token(KUBE_CLUSTER).value)
    api = config.new_client_from_config(str(path))  # type: ignore[no-untyped-call]
    names = [ns.metadata.name for ns in core_api(api).list_namespace().items]
    assert "kube-system" in names


def test_request_without_a_token_is_unauthorized(kube: KubeEmulator) -> None:
    with pytest.raises(ApiException) as caught:
        _raw_core(kube, None).list_namespace()
    assert caught.value.status == 401
    assert _status(caught.value) == UNAUTHORIZED_STATUS


def test_token_signed_sixteen_minutes_ago_is_rejected_as_expired(kube: KubeEmulator) -> None:
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    token = _retoken(eks.generate_token(KUBE_CLUSTER).value, **{"X-Amz-Date": old.strftime("%Y%m%dT%H%M%SZ")})
    with pytest.raises(ApiException) as caught:
        _raw_core(kube, token).list_namespace()
    assert caught.value.status == 401
    assert "expired" in kube.auth_failures[-1]
    # the API server says only "Unauthorized": the product's words must not blame the access entry alone
    with pytest.raises(ClusterAccessDenied) as denied, eks.kube_errors(KUBE_CLUSTER, "list namespaces"):
        _raw_core(kube, token).list_namespace()
    assert "or its token was refused (expired, or a skewed clock)" in denied.value.message


def test_token_signed_for_another_cluster_is_rejected(kube: KubeEmulator) -> None:
    token = eks.generate_token("some-other-cluster").value
    with pytest.raises(ApiException) as caught:
        _raw_core(kube, token).list_namespace()
    assert caught.value.status == 401
    assert "SignatureDoesNotMatch" in kube.auth_failures[-1]


@pytest.mark.parametrize(
    ("case", "make_token"),
    [
        ("no k8s-aws-v1 prefix", lambda t: t.removeprefix(eks.TOKEN_PREFIX)),
        ("not base64", lambda t: eks.TOKEN_PREFIX + "%%%not-base64%%%"),
        ("another STS action", lambda t: _retoken(t, Action="AssumeRole")),
        ("presigned for longer than 15 minutes", lambda t: _retoken(t, **{"X-Amz-Expires": "3600"})),
        ("cluster header not signed", lambda t: _retoken(t, **{"X-Amz-SignedHeaders": "host"})),
        ("tampered signature", lambda t: _retoken(t, **{"X-Amz-Signature": "0" * 64})),
    ],
)
def test_malformed_token_is_unauthorized(kube: KubeEmulator, case: str, make_token: object) -> None:
    token = make_token(eks.generate_token(KUBE_CLUSTER).value)  # type: ignore[operator]
    with pytest.raises(ApiException) as caught:
        _raw_core(kube, token).list_namespace()
    assert caught.value.status == 401, case


def _allowed(call: Callable[[], object]) -> bool:
    """Whether the call went through; False when refused with 403 (any other failure is raised)."""
    try:
        call()
    except ApiException as error:
        if error.status != 403:
            raise
        return False
    return True


READ_PODS = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "list"]}]


def test_a_request_no_rule_allows_is_forbidden_with_the_api_servers_message(kube: KubeEmulator) -> None:
    core = core_api(restricted_client(kube, READ_PODS))
    with pytest.raises(ApiException) as caught:
        core.list_node()
    assert caught.value.status == 403
    body = _status(caught.value)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'nodes is forbidden: User "{PROBE_USER}" cannot list resource "nodes" '
        'in API group "" at the cluster scope'
    )
    assert body["details"] == {"kind": "nodes"}


def test_a_named_resource_of_a_group_is_refused_with_its_qualified_name(kube: KubeEmulator) -> None:
    batch = batch_api(restricted_client(kube, READ_PODS))
    with pytest.raises(ApiException) as caught:
        batch.read_namespaced_job("capture-1", "default")
    assert _status(caught.value)["message"] == (
        f'jobs.batch "capture-1" is forbidden: User "{PROBE_USER}" cannot get resource "jobs" '
        'in API group "batch" in the namespace "default"'
    )
    assert _status(caught.value)["details"] == {"name": "capture-1", "group": "batch", "kind": "jobs"}


def test_rules_allow_per_verb_and_resource(kube: KubeEmulator) -> None:
    core = core_api(restricted_client(kube, READ_PODS))
    core.create_namespaced_pod("default", POD)
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["probe"]
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod("probe", "default")
    assert caught.value.status == 403


def test_a_role_binding_allows_only_in_its_namespace(kube: KubeEmulator) -> None:
    core = core_api(restricted_client(kube, READ_PODS, namespace="default"))
    core.create_namespaced_pod("default", POD)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("kube-system")
    assert _status(caught.value)["message"] == (
        f'pods is forbidden: User "{PROBE_USER}" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"'
    )


def test_a_binding_to_a_missing_role_is_named_in_the_refusal(kube: KubeEmulator) -> None:
    core = core_api(restricted_client(kube, READ_PODS))
    kube.registry.delete(CLUSTERROLES, None, "probe")
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("default")
    assert str(_status(caught.value)["message"]).endswith(
        ': RBAC: clusterrole.rbac.authorization.k8s.io "probe" not found'
    )


@pytest.mark.parametrize(
    ("policy", "namespace", "allowed"),
    [
        ("AmazonEKSViewPolicy", "default", ["list"]),
        ("AmazonEKSEditPolicy", "default", ["list", "create"]),
        ("AmazonEKSEditPolicy", "kube-system", []),
        ("AmazonEKSAdminPolicy", "default", ["list", "create"]),
    ],
)
def test_an_access_policy_scoped_to_a_namespace_allows_its_roles_verbs_there_only(
    kube: KubeEmulator, policy: str, namespace: str, allowed: list[str]
) -> None:
    create_access_entry(kube, policy, policy=policy, namespaces=("default",))
    core = core_api(eks.api_client(KUBE_CLUSTER, session=role_session(policy)))
    calls: dict[str, Callable[[], object]] = {
        "list": lambda: core.list_namespaced_pod(namespace),
        "create": lambda: core.create_namespaced_pod(namespace, POD),
    }
    assert [verb for verb, call in calls.items() if _allowed(call)] == allowed
    with pytest.raises(ApiException):
        core.list_node()  # a namespace scope never reaches cluster-scoped resources


def test_caller_without_access_entry_is_unauthorized(kube: KubeEmulator) -> None:
    stranger = role_session("stranger")
    with pytest.raises(ClusterAccessDenied) as caught, eks.kube_errors(KUBE_CLUSTER, "list nodes", stranger):
        core_api(eks.api_client(KUBE_CLUSTER, session=stranger)).list_node()
    assert "did not authenticate IAM principal arn:aws:iam::123456789012:role/stranger (401" in (
        caught.value.message
    )
    assert kube.auth_failures[-1] == (
        "no access entry for arn:aws:sts::123456789012:assumed-role/stranger/probe"
    )


def test_the_clusters_creator_is_its_admin(kube: KubeEmulator, kube_client: client.ApiClient) -> None:
    [policy] = boto3.client("eks").list_associated_access_policies(
        clusterName=KUBE_CLUSTER, principalArn=_caller_arn()
    )["associatedAccessPolicies"]
    assert (policy["policyArn"], policy["accessScope"]) == (
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        {"type": "cluster"},
    )
    core_api(kube_client).create_namespace({"metadata": {"name": "made-by-the-creator"}})


def test_forbidden_becomes_access_denied_naming_verb_and_resource(kube: KubeEmulator) -> None:
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }
        },
    }
    batch = batch_api(restricted_client(kube, READ_PODS))
    with pytest.raises(ClusterAccessDenied) as caught, eks.kube_errors(KUBE_CLUSTER, "create job"):
        batch.create_namespaced_job("default", job)
    assert (
        'cannot create resource "jobs" in API group "batch" in the namespace "default"'
        in caught.value.message
    )


def test_unknown_cluster_is_cluster_not_found(kube: KubeEmulator) -> None:
    with pytest.raises(ClusterNotFound):
        eks.api_client("no-such-cluster")


def test_two_clusters_are_reached_through_per_cluster_overrides(
    kube: KubeEmulator, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = start_kube_emulator(
        "second-cluster", aws.endpoint_url, REGION, create_eks_cluster("second-cluster")
    )
    try:
        kube.add_node("first-node")
        second.add_node("second-node")
        for name, value in combined_env([kube, second]).items():
            monkeypatch.setenv(name, value)
        eks.clear_caches()
        seen = {
            cluster: [n.metadata.name for n in core_api(eks.api_client(cluster)).list_node().items]
            for cluster in (KUBE_CLUSTER, "second-cluster")
        }
    finally:
        second.stop()
    assert seen == {KUBE_CLUSTER: ["first-node"], "second-cluster": ["second-node"]}
