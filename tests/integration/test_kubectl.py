"""Debian's kubectl (an API client this project did not write) against the emulated EKS cluster."""

from __future__ import annotations

import json
from typing import Any

from localcloud.kube import JOBS, PODS, KubeEmulator, PodBehaviour
from localcloud.kube.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, SERVICEACCOUNTS
from localcloud.kubectl import Kubectl

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "probe", "namespace": "default", "labels": {"app": "probe"}},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "probe"}},
            "spec": {
                "restartPolicy": "Never",
                "nodeName": "node-a",
                "containers": [{"name": "main", "image": "busybox:1.36"}],
            },
        }
    },
}


def test_get_nodes_lists_the_cluster_through_discovery(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kube.add_node("node-a")
    kube.add_node("node-b")
    names = kubectl.check("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
    assert names.split() == ["node-a", "node-b"]


def test_api_resources_lists_every_kind_the_project_deploys_or_reads(kubectl: Kubectl) -> None:
    listed = kubectl.check("api-resources", "-o", "name").split()
    for resource in (
        "pods",
        "nodes",
        "namespaces",
        "services",
        "serviceaccounts",
        "resourcequotas",
        "events",
        "jobs.batch",
        "daemonsets.apps",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ):
        assert resource in listed


def test_apply_creates_the_deploy_folder_and_a_second_apply_changes_nothing(
    kube: KubeEmulator, kubectl: Kubectl
) -> None:
    first = kubectl.apply()
    assert "namespace/eks-capture created" in first
    assert kube.get(SERVICEACCOUNTS, "eks-capture", "eks-capture-uploader") is not None
    assert kube.objects(ROLES, "eks-capture")
    assert kube.objects(ROLEBINDINGS, "eks-capture")
    assert kube.objects(CLUSTERROLES)
    assert kube.objects(CLUSTERROLEBINDINGS)
    second = kubectl.apply()
    assert "created" not in second
    assert "configured" not in second
    assert second.count("unchanged") == first.count("created")


def test_apply_of_a_changed_role_patches_it(kube: KubeEmulator, kubectl: Kubectl) -> None:
    role: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    kubectl.apply(json.dumps(role))
    role["rules"][0]["verbs"] = ["get", "list"]
    assert "role.rbac.authorization.k8s.io/reader configured" in kubectl.apply(json.dumps(role))
    stored = kube.get(ROLES, "default", "reader")
    assert stored is not None
    assert stored["rules"][0]["verbs"] == ["get", "list"]


def test_logs_of_a_job_read_its_pod(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kube.add_node("node-a")
    kube.script_pods(PodBehaviour(log="captured 42 packets\n"), name_prefix="probe")
    kubectl.apply(json.dumps(JOB))
    kube.wait_for(
        lambda: any(p["status"].get("phase") == "Running" for p in kube.objects(PODS, "default")),
        what="the probe pod running",
    )
    assert kubectl.check("logs", "job/probe") == "captured 42 packets\n"


def test_delete_with_foreground_cascade_returns_once_job_and_pods_are_gone(
    kube: KubeEmulator, kubectl: Kubectl
) -> None:
    kube.add_node("node-a")
    kube.script_pods(PodBehaviour(stop_after=0.3), name_prefix="probe")
    kubectl.apply(json.dumps(JOB))
    kube.wait_for(lambda: bool(kube.objects(PODS, "default")), what="the probe pod")
    out = kubectl.check("delete", "job", "probe", "-n", "default", "--cascade=foreground")
    assert out.strip() == 'job.batch "probe" deleted'
    assert kube.objects(JOBS, "default") == []
    assert kube.objects(PODS, "default") == []


def test_describe_namespace_shows_its_pod_security_labels(kubectl: Kubectl) -> None:
    kubectl.apply()
    described = kubectl.check("describe", "namespace", "eks-capture")
    assert "pod-security.kubernetes.io/enforce=privileged" in described
    assert "Status:       Active" in described
