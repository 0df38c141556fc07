"""The EKS token, endpoint overrides, retry policy and error mapping of eks_capture.kube.eks (no network)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import boto3
import pytest
from kubernetes.client.exceptions import ApiException

from eks_capture.errors import ApiThrottled, ClusterAccessDenied, ClusterRefused, ClusterUnreachable
from eks_capture.kube import eks

SESSION = boto3.Session(
    aws_access_key_id="AKIAEXAMPLE",
    aws_secret_access_key="secret",
    region_name="eu-west-1",
)


def decoded_url(token: str) -> urllib.parse.SplitResult:
    encoded = token.removeprefix("k8s-aws-v1.")
    return urllib.parse.urlsplit(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())


def test_token_is_prefixed_unpadded_base64url_of_a_presigned_get_caller_identity() -> None:
    token = eks.generate_token("prod-cluster", SESSION).value
    assert token.startswith("k8s-aws-v1.")
    assert "=" not in token
    assert "+" not in token
    assert "/" not in token
    url = decoded_url(token)
    query = dict(urllib.parse.parse_qsl(url.query))
    assert url.path == "/"
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert query["X-Amz-Credential"].startswith("AKIAEXAMPLE/")


def test_tokens_for_different_clusters_have_different_signatures() -> None:
    def signature(cluster: str) -> str:
        return dict(urllib.parse.parse_qsl(decoded_url(eks.generate_token(cluster, SESSION).value).query))[
            "X-Amz-Signature"
        ]

    assert signature("a") != signature("b")


def test_token_is_used_for_fourteen_minutes_less_the_refresh_margin() -> None:
    before = time.time()
    token = eks.generate_token("c", SESSION)
    assert before + 14 * 60 <= token.expires_at <= time.time() + 14 * 60
    assert token.fresh(token.expires_at - 61)
    assert not token.fresh(token.expires_at - 59)


def test_token_source_reuses_a_fresh_token() -> None:
    source = eks.TokenSource("c", SESSION)
    assert source.current() is source.current()


@pytest.mark.parametrize(
    ("endpoint", "ca_file", "cluster", "expected_endpoint", "expected_ca"),
    [
        ("", "", "prod", "https://real.eks", "REAL CA"),
        ("https://127.0.0.1:6443", "", "prod", "https://127.0.0.1:6443", "REAL CA"),
        ("prod=https://a:1,stage=https://b:2", "", "stage", "https://b:2", "REAL CA"),
        ("prod=https://a:1", "", "other", "https://real.eks", "REAL CA"),
        ("", "CA_FILE", "prod", "https://real.eks", "LOCAL CA"),
        ("", "stage=CA_FILE", "prod", "https://real.eks", "REAL CA"),
    ],
)
def test_endpoint_overrides_apply_per_cluster_or_to_all(
    tmp_path: object, endpoint: str, ca_file: str, cluster: str, expected_endpoint: str, expected_ca: str
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "ca.pem"
    path.write_text("LOCAL CA")
    overrides = eks.EndpointOverrides.from_env(
        {"EKS_ENDPOINT_OVERRIDE": endpoint, "EKS_CA_OVERRIDE_FILE": ca_file.replace("CA_FILE", str(path))}
    )
    applied = overrides.apply(eks.ClusterEndpoint(cluster, "https://real.eks", "REAL CA"))
    assert (applied.endpoint, applied.ca_pem) == (expected_endpoint, expected_ca)


@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [
        ("GET", 429, True),
        ("POST", 429, True),
        ("GET", 500, True),
        ("DELETE", 503, True),
        ("POST", 500, False),
        ("PATCH", 502, False),
        ("GET", 404, False),
        ("GET", 409, False),
    ],
)
def test_retry_policy_repeats_throttled_requests_and_idempotent_server_errors(
    method: str, status: int, retried: bool
) -> None:
    assert eks.retry_policy().is_retry(method, status, has_retry_after=False) is retried


def _api_error(status: int, message: str = "m") -> ApiException:
    error = ApiException(status=status, reason="r")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


RBAC_SAYS = 'pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope'
ADMISSION_SAYS = (
    'pods "p" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)'
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "Unauthorized", ClusterAccessDenied),
        (403, RBAC_SAYS, ClusterAccessDenied),
        (403, ADMISSION_SAYS, ClusterRefused),
        (429, "m", ApiThrottled),
        (500, "m", ClusterUnreachable),
        (503, "m", ClusterUnreachable),
    ],
)
def test_access_errors_map_to_domain_errors(status: int, message: str, expected: type[Exception]) -> None:
    mapped = eks.access_error(
        "c", _api_error(status, message), "list pods", principal="arn:aws:iam::1:role/r"
    )
    assert isinstance(mapped, expected)


@pytest.mark.parametrize("status", [404, 409, 422])
def test_object_errors_stay_api_exceptions(status: int) -> None:
    error = _api_error(status)
    assert eks.access_error("c", error, "create pod") is error
    with pytest.raises(ApiException), eks.kube_errors("c", "create pod"):
        raise error


def test_unauthorized_names_the_principal_that_needs_an_access_entry() -> None:
    denied = eks.access_error("prod", _api_error(401), "list pods", principal="arn:aws:iam::1:role/trigger")
    assert isinstance(denied, ClusterAccessDenied)
    assert "access entry" in denied.message
    assert "arn:aws:iam::1:role/trigger" in denied.message


def test_forbidden_message_names_the_rbac_verb_and_resource() -> None:
    message = 'pods is forbidden: User "u" cannot create resource "pods" in API group "" in the namespace "x"'
    denied = eks.access_error("c", _api_error(403, message), "create pod")
    assert isinstance(denied, ClusterAccessDenied)
    assert message in denied.message
