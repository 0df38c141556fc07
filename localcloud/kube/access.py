"""EKS access entries: which IAM principal is which Kubernetes user, and the access policies it holds.

A caller whose IAM principal has no access entry is refused with 401, as EKS refuses it. An entry gives
a username (by default the principal's ARN; for a role ``arn:aws:sts::<account>:assumed-role/<role>/
{{SessionName}}``, the session name filled in per request), Kubernetes groups for RBAC bindings, and
EKS access policies, each scoped to the cluster or to namespaces. The four policies this emulator
knows grant what the Kubernetes role they are modelled on grants (AWS's access policy permissions
page lists them side by side): AmazonEKSClusterAdminPolicy as cluster-admin, AmazonEKSAdminPolicy as
admin, AmazonEKSEditPolicy as edit, AmazonEKSViewPolicy as view.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from localcloud.kube.auth import Identity, canonical_arn

POLICY_ROLES = {
    "AmazonEKSClusterAdminPolicy": "cluster-admin",
    "AmazonEKSAdminPolicy": "admin",
    "AmazonEKSEditPolicy": "edit",
    "AmazonEKSViewPolicy": "view",
}
POLICY_ARN_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
AUTHENTICATED = "system:authenticated"
SESSION_NAME = "{{SessionName}}"


class AccessEntryError(ValueError):
    """An access entry EKS would refuse to create (e.g. an unknown access policy)."""


@dataclass(frozen=True)
class User:
    """A Kubernetes user: the name RBAC and 403 messages use, its groups, and the IAM principal behind it.

    ``principal_arn`` is EKS's ``canonicalArn`` user extra: the access policies of that principal's entry
    apply. An impersonated user has none, so only RBAC applies to it (as on EKS).
    """

    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)
    principal_arn: str = ""


@dataclass(frozen=True)
class AccessPolicy:
    """An EKS access policy association: the policy's name and its scope (no namespaces: the cluster)."""

    name: str
    namespaces: tuple[str, ...] = ()

    @classmethod
    def from_arn(cls, arn: str, namespaces: Iterable[str] = ()) -> AccessPolicy:
        name = arn.rsplit("/", 1)[-1]
        if name not in POLICY_ROLES or ":cluster-access-policy/" not in arn:
            raise AccessEntryError(f"InvalidParameterException: the access policy {arn} does not exist")
        return cls(name, tuple(namespaces))

    @property
    def cluster_role(self) -> str:
        """The Kubernetes ClusterRole whose rules this policy grants."""
        return POLICY_ROLES[self.name]

    def covers(self, namespace: str | None) -> bool:
        """Whether a request in ``namespace`` (None: cluster scope) is within this policy's scope."""
        return not self.namespaces or namespace in self.namespaces


@dataclass(frozen=True)
class AccessEntry:
    """One ``AWS::EKS::AccessEntry`` of type STANDARD."""

    principal_arn: str
    groups: tuple[str, ...] = ()
    policies: tuple[AccessPolicy, ...] = ()
    username: str = ""

    def user(self, identity: Identity) -> User:
        """The Kubernetes user the caller becomes, its session name substituted as EKS does."""
        session = identity.arn.rsplit("/", 1)[-1] if ":assumed-role/" in identity.arn else ""
        name = (self.username or default_username(self.principal_arn)).replace(SESSION_NAME, session)
        return User(name, (*self.groups, AUTHENTICATED), self.principal_arn)


def default_username(principal_arn: str) -> str:
    """EKS's username for an entry that names none: a role's assumed-role ARN pattern, else the ARN."""
    parts = principal_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/"):
        role = parts[5].rsplit("/", 1)[-1]
        return f"arn:{parts[1]}:sts::{parts[4]}:assumed-role/{role}/{SESSION_NAME}"
    return principal_arn


def cluster_creator(principal_arn: str) -> AccessEntry:
    """The entry EKS makes for the cluster's creator (bootstrapClusterCreatorAdminPermissions)."""
    return AccessEntry(principal_arn, policies=(AccessPolicy("AmazonEKSClusterAdminPolicy"),))


class AccessEntries:
    """The cluster's access entries, keyed by principal ARN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, AccessEntry] = {}

    def add(self, entry: AccessEntry) -> None:
        """Create or replace the entry of ``entry.principal_arn``."""
        with self._lock:
            self._entries[entry.principal_arn] = entry

    def remove(self, principal_arn: str) -> None:
        with self._lock:
            self._entries.pop(principal_arn, None)

    def entries(self) -> list[AccessEntry]:
        with self._lock:
            return list(self._entries.values())

    def entry_for(self, identity: Identity) -> AccessEntry | None:
        """The entry of the caller (a session's role found through its role ARN), or None."""
        with self._lock:
            for arn in (identity.arn, canonical_arn(identity.arn)):
                if arn in self._entries:
                    return self._entries[arn]
        return None

    def policies_of(self, user: User) -> tuple[AccessPolicy, ...]:
        """The access policies of the entry ``user`` authenticated through (none for an impersonated user)."""
        with self._lock:
            entry = self._entries.get(user.principal_arn)
        return entry.policies if entry else ()
