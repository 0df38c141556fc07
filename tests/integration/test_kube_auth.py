"""EKS authentication and RBAC through the official client: tokens verified via STS, 401 and 403 bodies."""

from __future__ import annotations

import base64
import datetime
import urllib.parse
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
from tests.fixtures.kube import KUBE_CLUSTER, batch_api, core_api

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
    assert _status(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_token_signed_sixteen_minutes_ago_is_rejected_as_expired(kube: KubeEmulator) -> None:
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    token = _retoken(eks.generate_token(KUBE_CLUSTER).value, **{"X-Amz-Date": old.strftime("%Y%m%dT%H%M%SZ")})
    with pytest.raises(ApiException) as caught:
        _raw_core(kube, token).list_namespace()
    assert caught.value.status == 401
    assert "expired" in kube.auth_failures[-1]


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


def test_denied_verb_is_forbidden_with_the_api_servers_message(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube.rbac.deny(verbs="list", resources="nodes")
    with pytest.raises(ApiException) as caught:
        core_api(kube_client).list_node()
    assert caught.value.status == 403
    body = _status(caught.value)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        f'nodes is forbidden: User "{_caller_arn()}" cannot list resource "nodes" '
        'in API group "" at the cluster scope'
    )
    assert body["details"] == {"kind": "nodes"}


def test_denial_is_per_verb_and_resource(kube: KubeEmulator, kube_client: client.ApiClient) -> None:
    kube.rbac.deny(verbs="list", resources="nodes")
    core = core_api(kube_client)
    core.create_namespaced_pod("default", POD)
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["probe"]


def test_assumed_role_maps_to_its_access_entry_and_namespaced_rules(kube: KubeEmulator) -> None:
    credentials = boto3.client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/capture-trigger", RoleSessionName="lambda"
    )["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    kube.rbac.map_identity(
        "arn:aws:iam::123456789012:role/capture-trigger", "eks-capture:trigger", ["eks-capture"]
    )
    kube.rbac.clear_rules()
    kube.rbac.allow(
        subjects="group:eks-capture", verbs=("create", "list"), resources="pods", namespaces="default"
    )
    core = core_api(eks.api_client(KUBE_CLUSTER, session=session))
    core.create_namespaced_pod("default", POD)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("kube-system")
    assert _status(caught.value)["message"] == (
        'pods is forbidden: User "eks-capture:trigger" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"'
    )


def test_caller_without_access_entry_is_unauthorized_when_mapping_is_required(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube.rbac.map_unknown_callers = False
    with pytest.raises(ClusterAccessDenied) as caught, eks.kube_errors(KUBE_CLUSTER, "list nodes"):
        core_api(kube_client).list_node()
    assert "access entry" in caught.value.message
    assert _caller_arn() in caught.value.message
    assert kube.auth_failures[-1] == f"no access entry for {_caller_arn()}"


def test_forbidden_becomes_access_denied_naming_verb_and_resource(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube.rbac.deny(verbs="create", resources="jobs", api_groups="batch")
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }
        },
    }
    with pytest.raises(ClusterAccessDenied) as caught, eks.kube_errors(KUBE_CLUSTER, "create job"):
        batch_api(kube_client).create_namespaced_job("default", job)
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
    create_eks_cluster("second-cluster")
    second = start_kube_emulator("second-cluster", aws.endpoint_url, REGION)
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
