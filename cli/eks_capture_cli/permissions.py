"""What each of the stack's cluster identities must and must not be allowed to do, once.

Derived from the calls the functions make (eks_capture.kube.calls.Cluster, by the module that makes
them) and checked against deploy/kubernetes/rbac.yaml by tests/unit/test_cluster_permissions.py; the
doctor asks the cluster's own authorizer (SubjectAccessReview) each of these for each identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eks_capture_cli.cluster_manifests import TEARDOWN_GROUP, TRIGGER_GROUP


class Identity(StrEnum):
    """The stack's functions that call the Kubernetes API (each through its own EKS access entry)."""

    TRIGGER = "trigger"
    TEARDOWN = "teardown"


@dataclass(frozen=True)
class Permission:
    """One verb on one resource; ``namespaced``: in the capture namespace, else cluster-wide."""

    verb: str
    resource: str
    group: str = ""
    namespaced: bool = True
    why: str = ""

    def __str__(self) -> str:
        where = "" if self.namespaced else " (cluster-wide)"
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {kind}{where}"


# The stack's output naming each identity's IAM role, and the Kubernetes groups its access entry gives it
# (template.yaml's TriggerAccessEntry/TeardownAccessEntry; rbac.yaml binds these groups).
ROLE_OUTPUTS = {Identity.TRIGGER: "TriggerRoleArn", Identity.TEARDOWN: "TeardownRoleArn"}
GROUPS = {Identity.TRIGGER: (TRIGGER_GROUP,), Identity.TEARDOWN: (TEARDOWN_GROUP,)}

NEEDED: dict[Identity, tuple[Permission, ...]] = {
    Identity.TRIGGER: (
        Permission("list", "nodes", namespaced=False, why="targets: Cluster.nodes"),
        Permission(
            "list", "pods", namespaced=False, why="pod selectors and the cluster context: Cluster.pods"
        ),
        Permission("list", "services", namespaced=False, why="the cluster context: Cluster.services"),
        Permission(
            "get", "services", namespaced=False, why="an alarm's or request's Service: Cluster.service"
        ),
        Permission(
            "list",
            "endpointslices",
            "discovery.k8s.io",
            namespaced=False,
            why="the nodes of a Service's ready endpoints: Cluster.endpoint_slices",
        ),
        Permission("list", "jobs", "batch", why="busy nodes and stop: Cluster.capture_jobs"),
        Permission("create", "jobs", "batch", why="launch: Cluster.create_job"),
        Permission("delete", "jobs", "batch", why="stop and roll back: Cluster.delete_job"),
        Permission("list", "pods", why="recorder pods: Cluster.pods"),
        Permission("patch", "pods", why="a recorder's window request: Cluster.annotate_pod"),
        Permission("list", "daemonsets", "apps", why="the recorder: Cluster.recorder_daemonsets"),
        Permission("create", "daemonsets", "apps", why="recorder enable: Cluster.apply_daemonset"),
        Permission("update", "daemonsets", "apps", why="recorder settings: Cluster.apply_daemonset"),
        Permission("delete", "daemonsets", "apps", why="recorder disable: Cluster.delete_daemonset"),
    ),
    Identity.TEARDOWN: (
        Permission("list", "jobs", "batch", why="the sweep: Cluster.capture_jobs"),
        Permission("delete", "jobs", "batch", why="expired captures: Cluster.delete_job"),
        Permission("list", "pods", why="the sweep and recorder health: Cluster.capture_pods, Cluster.pods"),
        Permission("delete", "pods", why="orphaned pods: Cluster.delete_pod"),
        Permission("list", "events", why="why a Job got no pod: Cluster.job_refusals"),
        Permission("list", "daemonsets", "apps", why="recorder health: Cluster.recorder_daemonsets"),
    ),
}

# What an identity that only lists and deletes must never be able to do: any of these starts (or
# changes) a pod that is root on a node (issue 18: one identity, one job).
REFUSED: dict[Identity, tuple[Permission, ...]] = {
    Identity.TRIGGER: (),
    Identity.TEARDOWN: (
        Permission("create", "jobs", "batch"),
        Permission("create", "pods"),
        Permission("patch", "pods"),
        Permission("create", "daemonsets", "apps"),
        Permission("update", "daemonsets", "apps"),
        Permission("patch", "daemonsets", "apps"),
        Permission("impersonate", "serviceaccounts", namespaced=False),
    ),
}
