"""Debian's kubectl (an API client this project did not write) against the emulated EKS cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from eks_capture.kube import eks
from localcloud.kube import JOBS, PODS, KubeEmulator, PodBehaviour
from localcloud.kube.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES, SERVICEACCOUNTS
from localcloud.kubectl import MANIFESTS_DIR, Kubectl
from tests.fixtures.kube import KUBE_CLUSTER, PROBE_USER, grant, restricted_client, role_session

READ_JOBS = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}]

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


def typo(job: dict[str, Any]) -> str:
    """``job`` with a misspelled field, as a hand-edited manifest would have it."""
    misspelled = json.loads(json.dumps(job))
    misspelled["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return json.dumps(misspelled)


TYPO_REFUSED = (
    'Error from server (BadRequest): error when creating "STDIN": Job in version "v1" cannot be handled '
    'as a Job: strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy"\n'
)


@pytest.mark.parametrize("command", ["create", "apply"])
def test_a_typo_in_a_new_manifest_is_refused_by_server_side_strict_validation(
    kube: KubeEmulator, kubectl: Kubectl, command: str
) -> None:
    done = kubectl.run(command, "-f", "-", stdin=typo(JOB))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", TYPO_REFUSED)
    assert kube.objects(JOBS, "default") == []


def test_a_typo_applied_over_an_existing_object_is_refused_as_an_invalid_patch(
    kube: KubeEmulator, kubectl: Kubectl
) -> None:
    kubectl.apply(json.dumps(JOB))
    done = kubectl.run("apply", "-f", "-", stdin=typo(JOB))
    assert done.returncode == 1
    # the patch as the server decoded it (Go's %+v of the map: last-applied annotation, then the spec)
    assert done.stderr.startswith(
        'The request is invalid: patch: Invalid value: "map[metadata:map[annotations:'
    )
    assert "containers:[map[imagePullPolicyy:Always name:main]]" in done.stderr
    assert done.stderr.endswith(
        '": strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy"\n'
    )
    stored = kube.get(JOBS, "default", "probe")
    assert stored is not None
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]


def test_validate_warn_creates_the_object_and_prints_the_servers_warning(
    kube: KubeEmulator, kubectl: Kubectl
) -> None:
    done = kubectl.run("apply", "--validate=warn", "-f", "-", stdin=typo(JOB))
    assert (done.returncode, done.stdout) == (0, "job.batch/probe created\n")
    assert done.stderr == 'Warning: unknown field "spec.template.spec.containers[0].imagePullPolicyy"\n'
    stored = kube.get(JOBS, "default", "probe")
    assert stored is not None
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]


def test_the_deploy_folder_has_no_field_strict_validation_would_refuse(kubectl: Kubectl) -> None:
    done = kubectl.run("apply", "--validate=strict", "-f", str(MANIFESTS_DIR))
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr


ROLE_MANAGER = [
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "get"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
]
ESCALATE = [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]
BIND_TRIGGER = [
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles"],
        "resourceNames": ["eks-capture-trigger"],
        "verbs": ["bind"],
    }
]


def role(name: str, *rules: tuple[str, str, str]) -> str:
    listed = [{"apiGroups": [g], "resources": [r], "verbs": v.split(",")} for g, r, v in rules]
    meta = {"name": name, "namespace": "eks-capture"}
    return json.dumps(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": listed}
    )


def binding(name: str, role_kind: str, role_name: str, group: str) -> str:
    return json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "eks-capture"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }
    )


NOT_HELD = "is attempting to grant RBAC permissions not currently held:"
MANAGER = 'user "alice" (groups=["role-managers" "system:authenticated"])'


@pytest.mark.parametrize(
    ("groups", "manifest", "outcome"),
    [
        (
            {"role-managers": ROLE_MANAGER},
            role("reader", ("batch", "jobs", "get,list")),
            "role.rbac.authorization.k8s.io/reader created\n",
        ),
        (
            {"role-managers": ROLE_MANAGER},
            role("maker", ("", "pods", "create"), ("batch", "jobs", "get,delete")),
            'Error from server (Forbidden): error when creating "STDIN": roles.rbac.authorization.k8s.io '
            f'"maker" is forbidden: {MANAGER} {NOT_HELD}\n'
            '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}\n'
            '{APIGroups:["batch"], Resources:["jobs"], Verbs:["delete"]}\n',
        ),
        (
            {"role-managers": ROLE_MANAGER, "escalators": ESCALATE},
            role("maker", ("", "pods", "create"), ("batch", "jobs", "get,delete")),
            "role.rbac.authorization.k8s.io/maker created\n",
        ),
        (
            {"role-managers": ROLE_MANAGER},
            binding("more", "Role", "eks-capture-trigger", "role-managers"),
            'Error from server (Forbidden): error when creating "STDIN": '
            'rolebindings.rbac.authorization.k8s.io "more" '
            f"is forbidden: {MANAGER} {NOT_HELD}\n"
            '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list" "patch"]}\n'
            '{APIGroups:["apps"], Resources:["daemonsets"], '
            'Verbs:["get" "list" "create" "update" "delete"]}\n'
            '{APIGroups:["batch"], Resources:["jobs"], Verbs:["create" "delete"]}\n',
        ),
        (
            {"role-managers": ROLE_MANAGER, "binders": BIND_TRIGGER},
            binding("more", "Role", "eks-capture-trigger", "role-managers"),
            "rolebinding.rbac.authorization.k8s.io/more created\n",
        ),
        (
            {"role-managers": ROLE_MANAGER},
            binding("more", "Role", "nope", "role-managers"),
            'Error from server (NotFound): error when creating "STDIN": '
            'roles.rbac.authorization.k8s.io "nope" not found\n',
        ),
        (
            {"eks-capture-trigger": []},
            binding("admin", "ClusterRole", "cluster-admin", "eks-capture-trigger"),
            'Error from server (Forbidden): error when creating "STDIN": '
            "rolebindings.rbac.authorization.k8s.io "
            'is forbidden: User "alice" cannot create resource "rolebindings" in API group '
            '"rbac.authorization.k8s.io" in the namespace "eks-capture"\n',
        ),
    ],
    ids=[
        "role-within-held-rights",
        "role-beyond-held-rights",
        "role-beyond-with-escalate",
        "binding-to-a-role-not-held",
        "binding-with-bind-on-the-role",
        "binding-to-a-missing-role",
        "trigger-binds-itself-cluster-admin",
    ],
)
def test_nobody_grants_rbac_permissions_they_do_not_hold(
    kube: KubeEmulator, kubectl: Kubectl, groups: dict[str, list[dict[str, Any]]], manifest: str, outcome: str
) -> None:
    kubectl.apply()
    for group, rules in groups.items():
        if rules:
            grant(kube, group, rules, "eks-capture")
    as_alice = ["--as", "alice", *(f"--as-group={group}" for group in groups)]
    done = kubectl.run("create", "-f", "-", *as_alice, stdin=manifest)
    assert (done.stdout or done.stderr) == outcome
    assert done.returncode == (0 if done.stdout else 1)


def test_a_patch_that_widens_a_role_is_checked_like_a_create(kube: KubeEmulator, kubectl: Kubectl) -> None:
    kubectl.apply()
    manager = [{**ROLE_MANAGER[0], "verbs": ["create", "get", "patch"]}, ROLE_MANAGER[1]]
    grant(kube, "role-managers", manager, "eks-capture")
    as_alice = ("--as", "alice", "--as-group", "role-managers")
    kubectl.check("apply", "-f", "-", *as_alice, stdin=role("reader", ("batch", "jobs", "get")))
    done = kubectl.run("apply", "-f", "-", *as_alice, stdin=role("reader", ("batch", "jobs", "get,create")))
    assert done.returncode == 1
    assert f'roles.rbac.authorization.k8s.io "reader" is forbidden: {MANAGER} {NOT_HELD}\n' in done.stderr
    assert done.stderr.endswith('{APIGroups:["batch"], Resources:["jobs"], Verbs:["create"]}\n')
    stored = kube.get(ROLES, "eks-capture", "reader")
    assert stored is not None
    assert stored["rules"][0]["verbs"] == ["get"]


def test_a_job_in_a_namespace_warned_at_restricted_is_created_with_kubectls_warning(
    kube: KubeEmulator, kubectl: Kubectl
) -> None:
    kubectl.check("label", "namespace", "default", "pod-security.kubernetes.io/warn=restricted")
    done = kubectl.run("apply", "-f", "-", stdin=json.dumps(JOB))
    assert (done.returncode, done.stdout) == (0, "job.batch/probe created\n")
    assert done.stderr == (
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "main" must set securityContext.allowPrivilegeEscalation=false), unrestricted '
        'capabilities (container "main" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "main" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "main" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")\n'
    )


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


def test_auth_can_i_answers_for_the_caller(kube: KubeEmulator, kubectl: Kubectl) -> None:
    probe = kube.kubectl(eks.generate_token(KUBE_CLUSTER, role_session("probe")).value)
    restricted_client(kube, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    assert kubectl.run("auth", "can-i", "delete", "nodes").stdout == "yes\n"
    assert probe.run("auth", "can-i", "list", "pods", "-n", "default").stdout == "yes\n"
    refused = probe.run("auth", "can-i", "delete", "pods", "-n", "default")
    assert (refused.returncode, refused.stdout) == (1, "no\n")


def test_auth_can_i_as_a_group_impersonates_it(kube: KubeEmulator, kubectl: Kubectl) -> None:
    grant(
        kube, "job-makers", [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}], "default"
    )
    asked = ("auth", "can-i", "create", "jobs", "-n", "default", "--as", "someone")
    assert kubectl.run(*asked, "--as-group", "job-makers").stdout == "yes\n"
    assert kubectl.run(*asked, "--as-group", "onlookers").stdout == "no\n"


def test_a_caller_may_not_impersonate_without_the_impersonate_verb(kube: KubeEmulator) -> None:
    api = restricted_client(kube, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    probe = kube.kubectl(eks.generate_token(KUBE_CLUSTER, role_session("probe")).value)
    done = probe.run("get", "pods", "-n", "default", "--as", "admin")
    assert done.returncode == 1
    assert "Error from server (Forbidden)" in done.stderr
    api.default_headers["Impersonate-User"] = "admin"
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).list_namespaced_pod("default")
    assert json.loads(refused.value.body or "{}")["message"] == (
        f'users "admin" is forbidden: User "{PROBE_USER}" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )


def test_a_service_account_subject_is_the_service_accounts_user(kube: KubeEmulator, kube_client: Any) -> None:
    kube.create(ROLES, "default", {"metadata": {"name": "reader"}, "rules": READ_JOBS})
    kube.create(
        ROLEBINDINGS,
        "default",
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "default"}],
        },
    )
    authorization: Any = client.AuthorizationV1Api(kube_client)

    def review(user: str) -> Any:
        spec = {
            "user": user,
            "groups": ["system:authenticated"],
            "resourceAttributes": {
                "verb": "list",
                "group": "batch",
                "resource": "jobs",
                "namespace": "default",
            },
        }
        return authorization.create_subject_access_review({"spec": spec}).status

    allowed = review("system:serviceaccount:default:builder")
    assert (allowed.allowed, allowed.reason) == (
        True,
        'RBAC: allowed by RoleBinding "reader/default" of Role "reader" to ServiceAccount "default/builder"',
    )
    assert review("system:serviceaccount:kube-system:builder").allowed is False
