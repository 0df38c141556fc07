"""The resource types the emulator serves, in the API server's own vocabulary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives (group/version), its plural and kind, and its scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    default_propagation: str = "Background"
    returns_deleted_object: bool = False
    short_names: tuple[str, ...] = ()
    has_spec: bool = True
    stored: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``jobs.batch``: how NotFound and AlreadyExists messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Pod`` or ``Job.batch``: how Invalid messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_generation(self) -> bool:
        return self.plural in {"jobs", "daemonsets"}

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def verbs(self) -> tuple[str, ...]:
        """The verbs discovery lists: every verb for a stored resource, ``create`` for a review."""
        if not self.stored:
            return ("create",)
        return ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",))
NODES = ResourceType("", "v1", "nodes", "Node", namespaced=False, short_names=("no",))
PODS = ResourceType(
    "", "v1", "pods", "Pod", namespaced=True, returns_deleted_object=True, short_names=("po",)
)
SERVICES = ResourceType("", "v1", "services", "Service", namespaced=True, short_names=("svc",))
SERVICEACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", namespaced=True, short_names=("sa",), has_spec=False
)
RESOURCEQUOTAS = ResourceType(
    "", "v1", "resourcequotas", "ResourceQuota", namespaced=True, short_names=("quota",)
)
EVENTS = ResourceType("", "v1", "events", "Event", namespaced=True, short_names=("ev",), has_spec=False)
ENDPOINTSLICES = ResourceType(
    "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True, has_spec=False
)
JOBS = ResourceType("batch", "v1", "jobs", "Job", namespaced=True, default_propagation="Orphan")
DAEMONSETS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", namespaced=True, short_names=("ds",))
_RBAC = "rbac.authorization.k8s.io"
ROLES = ResourceType(_RBAC, "v1", "roles", "Role", namespaced=True, has_spec=False)
ROLEBINDINGS = ResourceType(_RBAC, "v1", "rolebindings", "RoleBinding", namespaced=True, has_spec=False)
CLUSTERROLES = ResourceType(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False, has_spec=False)
CLUSTERROLEBINDINGS = ResourceType(
    _RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False, has_spec=False
)
_AUTHORIZATION = "authorization.k8s.io"
SELFSUBJECTACCESSREVIEWS = ResourceType(
    _AUTHORIZATION, "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, stored=False
)
SUBJECTACCESSREVIEWS = ResourceType(
    _AUTHORIZATION, "v1", "subjectaccessreviews", "SubjectAccessReview", False, stored=False
)

ALL = (
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    ENDPOINTSLICES,
    SERVICEACCOUNTS,
    RESOURCEQUOTAS,
    EVENTS,
    JOBS,
    DAEMONSETS,
    ROLES,
    ROLEBINDINGS,
    CLUSTERROLES,
    CLUSTERROLEBINDINGS,
    SELFSUBJECTACCESSREVIEWS,
    SUBJECTACCESSREVIEWS,
)
_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL}
_BY_PLURAL = {r.plural: r for r in ALL}

SUBRESOURCES = {
    "pods": {"status", "log"},
    "jobs": {"status"},
    "daemonsets": {"status"},
    "nodes": {"status"},
    "resourcequotas": {"status"},
}


def resource_at(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``/apis/<group>/<version>/<plural>`` (``/api/v1`` is the empty group)."""
    return _BY_PATH.get((group, version, plural))


def resource_named(plural: str) -> ResourceType:
    """The resource type for a plural this emulator serves."""
    return _BY_PLURAL[plural]
