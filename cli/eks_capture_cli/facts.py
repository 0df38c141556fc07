"""What the doctor reads, as the operator: EKS and S3 through boto3, the cluster through the functions' own
client (an EKS token from the operator's credentials). A read that fails is an ``Unfetched`` saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from kubernetes.client.exceptions import ApiException

from eks_capture.errors import CaptureError
from eks_capture.kube import eks
from eks_capture.kube.calls import Cluster
from eks_capture.kube.refusals import api_message
from eks_capture_cli.checks import SESSION_NAME, Fact, Unfetched
from eks_capture_cli.permissions import Permission

T = TypeVar("T")
REVIEW_PARALLELISM = 8
REVIEWER = "eks-capture-doctor"  # the session name put in an entry's {{SessionName}} for the reviews
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def _why(error: Exception) -> str:
    if isinstance(error, ClientError):
        failure = error.response.get("Error", {})
        return f"{error.operation_name}: {failure.get('Code', '')}: {failure.get('Message', '')}"
    if isinstance(error, CaptureError):
        return error.message
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {api_message(error)}"
    return f"{type(error).__name__}: {error}"


def fetch(read: Callable[[], T]) -> Fact[T]:
    """``read()``, or Unfetched saying why it failed."""
    try:
        return read()
    except (ClientError, ApiException, CaptureError, BotoCoreError, OSError) as error:
        return Unfetched(_why(error))


def fetch_optional(read: Callable[[], T]) -> Fact[T | None]:
    """``read()``; None when what it reads does not exist (EKS's ResourceNotFoundException, the API's 404)."""
    try:
        return read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        return Unfetched(_why(error))
    except ApiException as error:
        if error.status == 404:
            return None
        return Unfetched(_why(error))
    except (CaptureError, BotoCoreError, OSError) as error:
        return Unfetched(_why(error))


class EksFacts:
    """The cluster as eks:* describes it."""

    def __init__(self, eks: Any, cluster: str) -> None:
        self.eks = eks
        self.cluster = cluster

    def authentication_mode(self) -> Fact[str]:
        def read() -> str:
            described = self.eks.describe_cluster(name=self.cluster)["cluster"]
            return str((described.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP"))

        return fetch(read)

    def access_entry(self, role_arn: Fact[str]) -> Fact[Mapping[str, Any] | None]:
        if isinstance(role_arn, Unfetched):
            return role_arn
        return fetch_optional(
            lambda: self.eks.describe_access_entry(clusterName=self.cluster, principalArn=role_arn)[
                "accessEntry"
            ]
        )

    def addon(self, name: str) -> Fact[Mapping[str, Any] | None]:
        return fetch_optional(
            lambda: self.eks.describe_addon(clusterName=self.cluster, addonName=name)["addon"]
        )

    def pod_identity_associations(self, namespace: str, account: str) -> Fact[list[Mapping[str, Any]]]:
        def read() -> list[Mapping[str, Any]]:
            listed = self.eks.list_pod_identity_associations(
                clusterName=self.cluster, namespace=namespace, serviceAccount=account
            )["associations"]
            return [
                self.eks.describe_pod_identity_association(
                    clusterName=self.cluster, associationId=a["associationId"]
                )["association"]
                for a in listed
            ]

        return fetch(read)


DOCTOR_ATTEMPTS = 2  # a preflight reports a flaky API rather than waiting out the functions' retries


def connect(cluster: str) -> Cluster:
    """The cluster's API as the operator (EKS token), with few retries, checked to answer ``/version``."""
    api = Cluster(cluster, eks.api_client(cluster, attempts=DOCTOR_ATTEMPTS))
    api.request("GET", "/version", "get version")
    return api


class ClusterFacts:
    """The cluster as its API server answers the operator (objects read, access reviewed)."""

    def __init__(self, cluster: str, connector: Callable[[str], Cluster] = connect) -> None:
        self.cluster = cluster
        self._connect = connector

    @cached_property
    def api(self) -> Fact[Cluster]:
        """The connected API, or why there is none (every cluster fact then says so, asked once)."""
        return fetch(lambda: self._connect(self.cluster))

    def get(self, path: str, operation: str) -> Fact[dict[str, Any] | None]:
        """One object, or None when the API answers 404."""
        api = self.api
        if isinstance(api, Unfetched):
            return api
        return fetch_optional(lambda: api.request("GET", path, operation))

    def namespace_labels(self, namespace: str) -> Fact[Mapping[str, str] | None]:
        found = self.get(f"/api/v1/namespaces/{namespace}", "get namespaces")
        if isinstance(found, Unfetched) or found is None:
            return found
        return dict((found.get("metadata") or {}).get("labels") or {})

    def service_account(self, namespace: str, account: str) -> Fact[dict[str, Any] | None]:
        """The service account, or None when it does not exist."""
        return self.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}", "get serviceaccounts")

    def resource_quotas(self, namespace: str) -> Fact[list[dict[str, Any]]]:
        api = self.api
        if isinstance(api, Unfetched):
            return api
        return fetch(
            lambda: list(api.pages(f"/api/v1/namespaces/{namespace}/resourcequotas", "list resourcequotas"))
        )

    def access_reviews(
        self, entry: Fact[Mapping[str, Any] | None], namespace: str, asked: Iterable[Permission]
    ) -> dict[Permission, Fact[bool]]:
        """The cluster's SubjectAccessReview answer for the entry's user and groups, per permission."""
        api = self.api
        if isinstance(entry, Unfetched):
            return dict.fromkeys(asked, entry)
        if entry is None:
            return dict.fromkeys(asked, Unfetched("no access entry to review"))
        if isinstance(api, Unfetched):
            return dict.fromkeys(asked, api)
        user = str(entry.get("username") or "").replace(SESSION_NAME, REVIEWER)
        groups = [*(entry.get("kubernetesGroups") or []), "system:authenticated"]
        asked = list(asked)
        with ThreadPoolExecutor(REVIEW_PARALLELISM) as pool:  # one round trip each: ask them together
            answers = pool.map(lambda p: self._review(api, user, groups, namespace, p), asked)
            return dict(zip(asked, answers, strict=True))

    @staticmethod
    def _review(api: Cluster, user: str, groups: list[str], namespace: str, asked: Permission) -> Fact[bool]:
        attributes = {"verb": asked.verb, "group": asked.group, "resource": asked.resource}
        if asked.namespaced:
            attributes["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
        }

        def read() -> bool:
            answer = api.request("POST", SUBJECT_ACCESS_REVIEWS, "create subjectaccessreviews", body=body)
            return bool((answer.get("status") or {}).get("allowed"))

        return fetch(read)


def bucket_notifications(s3: Any, bucket: Fact[str]) -> Fact[Mapping[str, Any]]:
    """The bucket's notification configuration (s3:GetBucketNotificationConfiguration)."""
    if isinstance(bucket, Unfetched):
        return bucket
    return fetch(lambda: dict(s3.get_bucket_notification_configuration(Bucket=bucket)))


def stack_value(outputs: Fact[Mapping[str, str]], name: str) -> Fact[str]:
    """One stack output, or why it is not there."""
    if isinstance(outputs, Unfetched):
        return outputs
    value = outputs.get(name)
    return value if value else Unfetched(f"the stack has no output {name}")
