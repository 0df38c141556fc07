"""Who an authenticated IAM principal is in the cluster: what EKS's authenticator asks of the EKS API.

EKS keeps access entries in its own API, not in the cluster, and the cluster follows that API: an entry
created, changed or deleted there (``aws eks create-access-entry``, ``associate-access-policy``,
``delete-access-entry``), or the authentication mode changed, changes what the cluster allows within
seconds. The emulator reads the local EKS API (moto with localcloud/eks_access.py) the same way, over
HTTP with boto3, and keeps each answer ``CACHE_SECONDS``; so the same calls change what it allows.

- Mode ``API`` or ``API_AND_CONFIG_MAP``: the caller's IAM principal (an assumed-role session as its role
  ARN) is looked up with DescribeAccessEntry. No entry: 401 Unauthorized, as EKS answers. An entry gives
  a username (``{{SessionName}}`` filled in per request), Kubernetes groups for RBAC bindings, and the
  access policies ListAssociatedAccessPolicies names, each scoped to the cluster or to namespaces.
- Mode ``CONFIG_MAP``: access entries are ignored. Only the aws-auth ConfigMap maps principals there,
  and this emulator serves no ConfigMaps, so the one principal mapped is the cluster's creator (when
  created with ``bootstrapClusterCreatorAdminPermissions``), which EKS maps out of sight as
  ``kubernetes-admin`` in ``system:masters``. (aws-auth mappings in ``API_AND_CONFIG_MAP`` are not
  modelled either.)

The four access policies this emulator knows grant what the Kubernetes role they are modelled on grants
(AWS's access policy permissions page lists them side by side): AmazonEKSClusterAdminPolicy as
cluster-admin, AmazonEKSAdminPolicy as admin, AmazonEKSEditPolicy as edit, AmazonEKSViewPolicy as view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from localcloud.kube.auth import Identity
from localcloud.principals import canonical_arn

POLICY_ROLES = {
    "AmazonEKSClusterAdminPolicy": "cluster-admin",
    "AmazonEKSAdminPolicy": "admin",
    "AmazonEKSEditPolicy": "edit",
    "AmazonEKSViewPolicy": "view",
}
AUTHENTICATED = "system:authenticated"
SESSION_NAME = "{{SessionName}}"
CONFIG_MAP = "CONFIG_MAP"
CACHE_SECONDS = 1.0
"""How long an answer of the EKS API is kept: a change made through that API applies within this."""
BOOTSTRAP_ADMIN = ("kubernetes-admin", ("system:masters",))
_Value = TypeVar("_Value")


class UnmappedPrincipalError(Exception):
    """Why an authenticated principal is no Kubernetes user; the client only ever sees ``401``."""


@dataclass(frozen=True)
class AccessPolicy:
    """An EKS access policy association: the policy's name and its scope (no namespaces: the cluster)."""

    name: str
    namespaces: tuple[str, ...] = ()

    @classmethod
    def from_association(cls, association: Mapping[str, Any]) -> AccessPolicy:
        """The policy of one ListAssociatedAccessPolicies item (EKS refused unknown policies already)."""
        scope = association.get("accessScope") or {}
        namespaces = (scope.get("namespaces") or ()) if scope.get("type") == "namespace" else ()
        return cls(str(association["policyArn"]).rsplit("/", 1)[-1], tuple(namespaces))

    @property
    def cluster_role(self) -> str:
        """The Kubernetes ClusterRole whose rules this policy grants."""
        return POLICY_ROLES[self.name]

    def covers(self, namespace: str | None) -> bool:
        """Whether a request in ``namespace`` (None: cluster scope) is within this policy's scope."""
        return not self.namespaces or namespace in self.namespaces


@dataclass(frozen=True)
class User:
    """A Kubernetes user: the name RBAC and 403 messages use, its groups, and the EKS access policies of
    the access entry it authenticated through (an impersonated user has none, so only RBAC applies to it,
    as on EKS)."""

    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)
    policies: tuple[AccessPolicy, ...] = ()


@dataclass(frozen=True)
class AccessEntry:
    """One STANDARD access entry as DescribeAccessEntry and ListAssociatedAccessPolicies give it."""

    username: str
    groups: tuple[str, ...] = ()
    policies: tuple[AccessPolicy, ...] = ()

    def user(self, identity: Identity) -> User:
        """The Kubernetes user the caller becomes, its session name substituted as EKS does."""
        session = identity.arn.rsplit("/", 1)[-1] if ":assumed-role/" in identity.arn else ""
        return User(
            self.username.replace(SESSION_NAME, session), (*self.groups, AUTHENTICATED), self.policies
        )


class EksAccessEntries:
    """The cluster's authentication mode and access entries, read from the EKS API at ``endpoint_url``."""

    def __init__(
        self,
        cluster_name: str,
        endpoint_url: str,
        region: str,
        creator_arn: str,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.cluster_name = cluster_name
        self._creator = canonical_arn(creator_arn)
        self._cache_seconds = cache_seconds
        # EKS reads its own records; the local API takes the credentials moto hands out to anyone.
        self._eks = boto3.client(
            "eks",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def user_for(self, identity: Identity) -> User:
        """The Kubernetes user ``identity`` is here; UnmappedPrincipalError saying why it is none."""
        principal = canonical_arn(identity.arn)
        mode, bootstrap = self._cached("", self._access_config)
        if mode == CONFIG_MAP:
            if bootstrap and principal == self._creator:
                name, groups = BOOTSTRAP_ADMIN
                return User(name, (*groups, AUTHENTICATED))
            raise UnmappedPrincipalError(
                f"authentication mode CONFIG_MAP: {identity.arn} is not mapped in aws-auth"
            )
        entry = self._cached(principal, lambda: self._entry(principal))
        if entry is None:
            raise UnmappedPrincipalError(f"no access entry for {identity.arn}")
        return entry.user(identity)

    def _cached(self, key: str, load: Callable[[], _Value]) -> _Value:
        """``load()``'s answer, kept ``cache_seconds``; one lookup at a time, so a burst asks once."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                value: _Value = hit[1]
                return value
            value = load()
            self._cache[key] = (time.monotonic() + self._cache_seconds, value)
            return value

    def _access_config(self) -> tuple[str, bool]:
        try:
            config = self._eks.describe_cluster(name=self.cluster_name)["cluster"].get("accessConfig") or {}
        except (BotoCoreError, ClientError) as error:
            raise UnmappedPrincipalError(f"EKS API: {error}") from None
        return (
            str(config.get("authenticationMode", CONFIG_MAP)),
            bool(config.get("bootstrapClusterCreatorAdminPermissions", True)),
        )

    def _entry(self, principal: str) -> AccessEntry | None:
        try:
            found = self._eks.describe_access_entry(clusterName=self.cluster_name, principalArn=principal)
            associations = self._eks.list_associated_access_policies(
                clusterName=self.cluster_name, principalArn=principal
            )["associatedAccessPolicies"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise UnmappedPrincipalError(f"EKS API: {error}") from None
        except BotoCoreError as error:
            raise UnmappedPrincipalError(f"EKS API: {error}") from None
        entry = found["accessEntry"]
        return AccessEntry(
            username=str(entry.get("username") or principal),
            groups=tuple(entry.get("kubernetesGroups") or ()),
            policies=tuple(AccessPolicy.from_association(a) for a in associations),
        )
