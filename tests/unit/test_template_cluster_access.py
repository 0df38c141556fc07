"""deploy/kubernetes/ agrees with the template and grants only what the functions use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from eks_capture.settings import Settings
from eks_capture_cli.cluster_manifests import TEARDOWN_GROUP, TRIGGER_GROUP, cluster_manifests, stack_names
from eks_capture_cli.permissions import GROUPS, NEEDED, REFUSED, Identity, Permission
from localcloud.template import PROJECT_ROOT, Stack, load_template

MANIFESTS = PROJECT_ROOT / "deploy" / "kubernetes"
PARAMETERS = load_template()["Parameters"]
NAMESPACE = PARAMETERS["CaptureNamespace"]["Default"]
SERVICE_ACCOUNT = PARAMETERS["CaptureServiceAccount"]["Default"]
# Pod Security Standards, baseline: the only capabilities a pod may add.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
READ_VERBS = {"get", "list", "watch"}


def _documents() -> list[dict[str, Any]]:
    return [d for path in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def _one(kind: str) -> dict[str, Any]:
    (document,) = [d for d in _documents() if d["kind"] == kind]
    return document


def _rendered_capture_pod() -> dict[str, Any]:
    settings = Settings.from_env(
        {
            "CAPTURE_BUCKET": "eks-capture-pcaps",
            "CAPTURE_TABLE": "eks-capture-index",
            "CAPTURE_IMAGE": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64,
            "CAPTURE_NAMESPACE": NAMESPACE,
            "CAPTURE_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
        }
    )
    started = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    spec = CaptureSpec(
        capture_id_for_event("psa", started),
        "shop-prod",
        CaptureOptions(duration_seconds=60, snaplen=96, filter=None),
        "pod security check",
        started,
    )
    job = capture_job(
        spec, NodeInfo("ip-10-0-0-1.ec2.internal", "i-0a1b2c3d4e5f60718", "us-east-1a"), settings
    )
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == NAMESPACE
    return pod


def _baseline_violations(pod: dict[str, Any]) -> list[str]:
    """What the baseline Pod Security Standard refuses in ``pod``: host namespaces, capabilities."""
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        if context.get("privileged"):
            found.append(f"{container['name']}: privileged")
        extra = set(context.get("capabilities", {}).get("add", [])) - BASELINE_CAPABILITIES
        found += [f"{container['name']}: adds {capability}" for capability in sorted(extra)]
    return found


@pytest.mark.parametrize("document", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_the_namespace_and_service_account_are_the_templates_defaults() -> None:
    account = _one("ServiceAccount")

    assert _one("Namespace")["metadata"]["name"] == NAMESPACE
    assert (account["metadata"]["name"], account["metadata"]["namespace"]) == (SERVICE_ACCOUNT, NAMESPACE)
    assert account["automountServiceAccountToken"] is False


def test_the_capture_pod_needs_more_than_baseline_so_only_its_own_namespace_enforces_privileged() -> None:
    labels = _one("Namespace")["metadata"]["labels"]

    assert _baseline_violations(_rendered_capture_pod())
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/audit"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"


def _rules(kind: str) -> list[dict[str, Any]]:
    return [rule for document in _documents() if document["kind"] == kind for rule in document["rules"]]


def test_no_rule_uses_a_wildcard() -> None:
    for rule in _rules("ClusterRole") + _rules("Role"):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule


def test_cluster_wide_access_is_read_only() -> None:
    assert {verb for rule in _rules("ClusterRole") for verb in rule["verbs"]} <= READ_VERBS


def test_write_access_is_confined_to_the_capture_namespace() -> None:
    assert {d["metadata"]["namespace"] for d in _documents() if d["kind"] in {"Role", "RoleBinding"}} == {
        NAMESPACE
    }


def _granted_to(groups: tuple[str, ...], permission: Permission) -> bool:
    """Whether rbac.yaml's bindings of ``groups`` grant ``permission`` (a namespaced one in the capture
    namespace, through a Role or a ClusterRole; a cluster-wide one through a ClusterRoleBinding only)."""
    documents = _documents()
    roles = {(d["kind"], d["metadata"]["name"]): d for d in documents if d["kind"] in {"Role", "ClusterRole"}}
    for binding in (d for d in documents if d["kind"].endswith("Binding")):
        if binding["kind"] == "RoleBinding" and not permission.namespaced:
            continue
        if not {s["name"] for s in binding["subjects"] if s["kind"] == "Group"} & set(groups):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        if any(
            permission.group in rule["apiGroups"]
            and permission.resource in rule["resources"]
            and permission.verb in rule["verbs"]
            for rule in role["rules"]
        ):
            return True
    return False


@pytest.mark.parametrize(
    ("identity", "permission"),
    [pytest.param(i, p, id=f"{i}-{p}") for i, needed in NEEDED.items() for p in needed],
)
def test_rbac_grants_each_call_the_functions_make(identity: Identity, permission: Permission) -> None:
    assert _granted_to(GROUPS[identity], permission), permission.why


@pytest.mark.parametrize(
    ("identity", "permission"),
    [pytest.param(i, p, id=f"{i}-{p}") for i, refused in REFUSED.items() for p in refused],
)
def test_rbac_grants_nothing_an_identity_must_not_do(identity: Identity, permission: Permission) -> None:
    assert not _granted_to(GROUPS[identity], permission)


def test_each_binding_names_one_functions_group_and_references_a_role_defined_here() -> None:
    bindings = [d for d in _documents() if d["kind"].endswith("Binding")]
    roles = {(d["kind"], d["metadata"]["name"]) for d in _documents() if d["kind"] in {"Role", "ClusterRole"}}

    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == roles
    assert [[(s["kind"], s["name"]) for s in b["subjects"]] for b in bindings] == [
        [("Group", TRIGGER_GROUP)],
        [("Group", TRIGGER_GROUP)],
        [("Group", TEARDOWN_GROUP)],
    ]


def test_the_folder_is_what_eks_capture_manifests_prints_for_the_templates_defaults() -> None:
    assert _documents() == cluster_manifests(stack_names({}))


def test_the_manifests_follow_a_stacks_own_namespace_and_service_account() -> None:
    names = stack_names({"CaptureNamespace": "netdebug", "CaptureServiceAccount": "pcap-writer"})
    documents = cluster_manifests(names)

    namespaced = [d["metadata"]["namespace"] for d in documents if "namespace" in d["metadata"]]
    assert set(namespaced) == {"netdebug"}
    assert [d["metadata"]["name"] for d in documents if d["kind"] in {"Namespace", "ServiceAccount"}] == [
        "netdebug",
        "pcap-writer",
    ]


def test_manifests_are_plain_files_kubectl_applies_from_one_folder() -> None:
    assert all(path.suffix == ".yaml" for path in Path(MANIFESTS).iterdir())


def test_the_doctor_expects_the_groups_each_functions_access_entry_gives() -> None:
    stack = Stack(load_template(), "test", {"ClusterNames": "shop-prod", "CreateImageRepository": "true"})
    roles = {Identity.TRIGGER: "TriggerRole", Identity.TEARDOWN: "TeardownRole"}
    entries = {
        str(props["PrincipalArn"]): tuple(props["KubernetesGroups"])
        for props in (
            stack.resolve(r["Properties"]) for r in stack.resources_of_type("AWS::EKS::AccessEntry").values()
        )
    }

    assert {identity: entries[stack.arn(role)] for identity, role in roles.items()} == GROUPS
