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


NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = ResourceType("", "v1", "nodes", "Node", namespaced=False)
PODS = ResourceType("", "v1", "pods", "Pod", namespaced=True, returns_deleted_object=True)
SERVICES = ResourceType("", "v1", "services", "Service", namespaced=True)
JOBS = ResourceType("batch", "v1", "jobs", "Job", namespaced=True, default_propagation="Orphan")
DAEMONSETS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)

ALL = (NAMESPACES, NODES, PODS, SERVICES, JOBS, DAEMONSETS)
_BY_PATH = {(r.group, r.version, r.plural): r for r in ALL}
_BY_PLURAL = {r.plural: r for r in ALL}

SUBRESOURCES = {"pods": {"status", "log"}, "jobs": {"status"}, "daemonsets": {"status"}, "nodes": {"status"}}


def resource_at(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``/apis/<group>/<version>/<plural>`` (``/api/v1`` is the empty group)."""
    return _BY_PATH.get((group, version, plural))


def resource_named(plural: str) -> ResourceType:
    """The resource type for a plural this emulator serves."""
    return _BY_PLURAL[plural]
