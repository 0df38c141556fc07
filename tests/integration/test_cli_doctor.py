"""``eks-capture doctor`` against the local cloud: each fault turns its own line red with a fix, and running
that fix as printed (Debian's kubectl, the AWS CLI) turns the line green again.

One local cloud for the module (LocalCloud, as the demo runs it: moto with the stack's EKS resources, the
emulated cluster with ``kubectl apply -f deploy/kubernetes/``); each test applies its fault, and the
``healthy`` fixture puts everything back.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
import yaml

from eks_capture.kube import eks
from eks_capture_cli.permissions import GROUPS, NEEDED, Identity
from localcloud.access import function_session, kubectl_as
from localcloud.cloud import POD_IDENTITY_AGENT, LocalCloud
from localcloud.kube import KubeEmulator
from localcloud.kube.access import CACHE_SECONDS
from localcloud.kube.resources import RESOURCEQUOTAS
from localcloud.kubectl import MANIFESTS_DIR, Kubectl
from localcloud.provision import describe_stack, provision_cluster
from localcloud.template import PROJECT_ROOT, Stack
from tests.fixtures.cli import invoke
from tests.fixtures.stack import CLUSTER, STACK_PARAMETERS
from tests.fixtures.waiting import eventually

STACK = "eks-capture"
NAMESPACE = "eks-capture"
ACCOUNT = "eks-capture-uploader"
EXTRA_BINDING = "someone-added-this"


@dataclass(frozen=True)
class World:
    """The healthy local cloud the doctor checks."""

    stack: Stack
    kube: KubeEmulator
    kubectl: Kubectl
    env: dict[str, str]

    def role(self, output: str) -> str:
        return self.stack.output(output)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The local cloud as the demo runs it (LocalCloud: the stack deployed, its access entries in EKS and
    in the cluster, deploy/kubernetes/ applied), plus the stack in CloudFormation for ``--stack``."""
    saved = dict(os.environ)
    parameters = {k: v for k, v in STACK_PARAMETERS.items() if k != "ClusterNames"}
    cloud = LocalCloud.start(CLUSTER, parameters)
    try:
        os.environ.update(cloud.kube.env())
        eks.clear_caches()
        describe_stack(cloud.stack, STACK)
        kubectl = cloud.kube.kubectl(eks.generate_token(CLUSTER).value)
        yield World(cloud.stack, cloud.kube, kubectl, {**cloud.moto.env(), **cloud.kube.env()})
    finally:
        eks.clear_caches()
        cloud.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def healthy(world: World) -> Iterator[None]:
    """Whatever a test broke is put back as the stack and deploy/kubernetes/ made it."""
    yield
    client = boto3.client("eks")
    creator = boto3.client("sts").get_caller_identity()["Arn"]  # keeps its entry: it runs kubectl below
    for principal in client.list_access_entries(clusterName=CLUSTER)["accessEntries"]:
        if principal != creator:
            client.delete_access_entry(clusterName=CLUSTER, principalArn=principal)
    for association in client.list_pod_identity_associations(clusterName=CLUSTER)["associations"]:
        client.delete_pod_identity_association(
            clusterName=CLUSTER, associationId=association["associationId"]
        )
    provision_cluster(world.stack, CLUSTER)
    if POD_IDENTITY_AGENT not in client.list_addons(clusterName=CLUSTER)["addons"]:
        client.create_addon(clusterName=CLUSTER, addonName=POD_IDENTITY_AGENT)
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=world.stack.name_of("CaptureBucket"),
        NotificationConfiguration={"EventBridgeConfiguration": {}},
    )
    world.kubectl.apply()
    world.kubectl.run("-n", NAMESPACE, "delete", "rolebinding", EXTRA_BINDING, "--ignore-not-found")
    for quota in world.kube.objects(RESOURCEQUOTAS, NAMESPACE):
        world.kube.registry.delete(RESOURCEQUOTAS, NAMESPACE, quota["metadata"]["name"])


def doctor(world: World, *args: str) -> tuple[int, dict[str, str], str]:
    """Run the doctor; its exit code, each check's line by name, and its whole output."""
    code, out, err = invoke("doctor", "-c", *args)
    lines = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] in ("ok", "FAIL", "UNKNOWN"):
            lines[parts[1].split("  ")[0].strip()] = line
    return code, lines, out + err


def check(world: World) -> tuple[int, dict[str, str], str]:
    return doctor(world, CLUSTER, "--stack", STACK)


def fix_of(output: str, name: str) -> str:
    """The fix printed under the red line ``name``."""
    found = output.splitlines()
    index = next(i for i, line in enumerate(found) if line.split(None, 1)[-1].startswith(name))
    fix = found[index + 1].strip()
    assert fix.startswith("fix: "), output
    return fix.removeprefix("fix: ")


def run_fix(world: World, command: str) -> str:
    """Run a printed fix as an operator would, in a shell: Debian's kubectl with the cluster's kubeconfig
    (its cache in the emulator's folder), the AWS CLI with the local cloud's endpoint and credentials."""
    assert shlex.split(command)[0] in ("kubectl", "aws"), command
    env = {
        **os.environ,
        **world.env,
        "KUBECONFIG": str(world.kubectl.kubeconfig),
        "KUBECACHEDIR": str(world.kubectl.cache_dir),
    }
    done = subprocess.run(
        ["bash", "-c", command], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_red_then_fixed(world: World, name: str, says: str) -> None:
    """The line ``name`` is red saying ``says``, the exit code 1; its fix turns it green."""
    code, lines, output = check(world)
    assert code == 1, output
    assert lines[name].startswith("FAIL"), output
    assert says in lines[name], output
    run_fix(world, fix_of(output, name))
    _, lines, output = check(world)
    assert lines[name].startswith("ok"), output


def test_a_healthy_stack_is_all_green_and_exits_zero(world: World) -> None:
    code, lines, output = check(world)

    assert code == 0, output
    assert list(lines) == [
        "authentication mode",
        "access entry: trigger",
        "access entry: teardown",
        "permissions: trigger",
        "permissions: teardown",
        "capture namespace",
        "capture service account",
        "quotas",
        "pod identity agent",
        "pod identity association",
        "bucket events",
    ]
    assert all(line.startswith("ok") for line in lines.values()), output
    assert "refused as they must be" in lines["permissions: teardown"]
    assert output.rstrip().endswith("all 11 checks green")


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_namespace_enforcing_a_stricter_pod_security_level_is_red(world: World, level: str) -> None:
    world.kubectl.check(
        "label", "ns", NAMESPACE, f"pod-security.kubernetes.io/enforce={level}", "--overwrite"
    )

    assert_red_then_fixed(world, "capture namespace", f"enforces Pod Security '{level}'")


def test_a_missing_service_account_is_red(world: World) -> None:
    world.kubectl.check("-n", NAMESPACE, "delete", "serviceaccount", ACCOUNT)

    assert_red_then_fixed(world, "capture service account", "does not exist")


def _quota(world: World, hard: dict[str, str]) -> None:
    world.kubectl.apply(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "team", "namespace": NAMESPACE},
                "spec": {"hard": hard},
            }
        )
    )


@pytest.mark.parametrize(
    ("hard", "says"),
    [
        pytest.param({"pods": "0"}, "pods: asks 1, used 0 of 0", id="no-pod-left"),
        pytest.param({"requests.cpu": "100m"}, "requests.cpu: asks 150m", id="cpu-exhausted"),
        pytest.param(
            {"limits.memory": "256Mi"}, "limits.memory: asks 512Mi, used 0 of 256Mi", id="memory-exhausted"
        ),
        pytest.param({"limits.cpu": "1"}, "limits.cpu: asks 1500m, used 0 of 1", id="limits-over-the-cap"),
    ],
)
def test_a_quota_that_would_refuse_a_capture_pod_is_red(
    world: World, hard: dict[str, str], says: str
) -> None:
    _quota(world, hard)

    assert_red_then_fixed(world, "quota team", says)


def test_a_quota_with_room_is_green(world: World) -> None:
    _quota(world, {"pods": "10", "requests.cpu": "2", "limits.memory": "4Gi"})

    _, lines, output = check(world)

    assert lines["quota team"].startswith("ok"), output
    assert "room for a capture pod" in lines["quota team"]


@pytest.mark.parametrize("identity", ["trigger", "teardown"])
def test_a_missing_access_entry_is_red(world: World, identity: str) -> None:
    role = world.role(f"{identity.capitalize()}RoleArn")
    as_role = kubectl_as(world.kube, function_session(world.stack, f"{identity.capitalize()}Function"))
    assert as_role.run("get", "jobs", "-n", NAMESPACE).returncode == 0
    boto3.client("eks").delete_access_entry(clusterName=CLUSTER, principalArn=role)

    _, lines, output = check(world)
    assert lines[f"permissions: {identity}"].startswith("UNKNOWN"), output
    assert "no access entry to review" in lines[f"permissions: {identity}"]
    refused = answer_within_seconds(as_role, failing=True)
    assert (
        refused.stderr.strip().splitlines()[-1] == "error: You must be logged in to the server (Unauthorized)"
    )
    assert_red_then_fixed(world, f"access entry: {identity}", "has no access entry")
    assert answer_within_seconds(as_role, failing=False).returncode == 0  # the printed fix lets it in again


def answer_within_seconds(kubectl: Kubectl, failing: bool) -> subprocess.CompletedProcess[str]:
    """``kubectl get jobs`` in the capture namespace once it fails (or succeeds): the cluster follows a
    change of access entries within the emulator's cache time, as EKS does within seconds."""

    def probe() -> subprocess.CompletedProcess[str] | None:
        done = kubectl.run("get", "jobs", "-n", NAMESPACE)
        return done if bool(done.returncode) == failing else None

    return eventually(
        probe, timeout=CACHE_SECONDS + 5, what=f"kubectl never {'failed' if failing else 'worked'}"
    )


def test_the_clusters_access_reviews_allow_every_call_the_trigger_makes(world: World) -> None:
    _, lines, output = check(world)

    assert lines["permissions: trigger"].startswith("ok"), output
    assert f"{len(NEEDED[Identity.TRIGGER])} call(s) allowed" in lines["permissions: trigger"]


def test_an_access_entry_in_the_wrong_group_is_red_and_so_are_its_permissions(world: World) -> None:
    role = world.role("TriggerRoleArn")
    boto3.client("eks").update_access_entry(
        clusterName=CLUSTER, principalArn=role, kubernetesGroups=["viewers"]
    )

    _, lines, output = check(world)
    assert lines["permissions: trigger"].startswith("FAIL"), output
    assert "denied list nodes (cluster-wide)" in lines["permissions: trigger"]
    assert_red_then_fixed(world, "access entry: trigger", "lack ['eks-capture-trigger']")
    assert check(world)[1]["permissions: trigger"].startswith("ok")


def test_rbac_missing_a_rule_a_function_needs_is_red(world: World) -> None:
    documents = yaml.safe_load_all((MANIFESTS_DIR / "rbac.yaml").read_text())
    [role] = [
        d
        for d in documents
        if d["kind"] == "Role" and any("pods" in r["resources"] and "patch" in r["verbs"] for r in d["rules"])
    ]
    for rule in role["rules"]:
        if "pods" in rule["resources"]:
            rule["verbs"].remove("patch")
    world.kubectl.apply(yaml.safe_dump(role))

    assert_red_then_fixed(world, "permissions: trigger", "denied patch pods")


def test_a_teardown_allowed_to_start_a_pod_is_red(world: World) -> None:
    """Whatever grants it (here a binding someone added), the teardown must not be able to create a Job."""
    world.kubectl.apply(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": EXTRA_BINDING, "namespace": NAMESPACE},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "edit",
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
                        for group in GROUPS[Identity.TEARDOWN]
                    ],
                }
            ]
        )
    )

    code, lines, output = check(world)

    assert code == 1
    assert lines["permissions: teardown"].startswith("FAIL"), output
    assert (
        "allowed what it must not: create jobs.batch, create pods, patch pods"
        in lines["permissions: teardown"]
    )
    fix = fix_of(output, "permissions: teardown")
    assert fix.startswith("kubectl get rolebindings,clusterrolebindings -A -o custom-columns=")
    assert EXTRA_BINDING in run_fix(world, fix)


def test_a_cluster_without_api_authentication_is_red(world: World) -> None:
    boto3.client("eks").create_cluster(
        name="legacy",
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": []},
        accessConfig={"authenticationMode": "CONFIG_MAP"},
    )
    try:
        code, lines, output = doctor(world, "legacy", "--stack", STACK)
        assert code == 1
        assert lines["authentication mode"].startswith("FAIL"), output
        assert "CONFIG_MAP: access entries are ignored" in lines["authentication mode"]
        run_fix(world, fix_of(output, "authentication mode"))
        _, lines, output = doctor(world, "legacy", "--stack", STACK)
        assert lines["authentication mode"].startswith("ok"), output
    finally:
        boto3.client("eks").delete_cluster(name="legacy")


def test_a_cluster_without_the_pod_identity_agent_is_red(world: World) -> None:
    boto3.client("eks").delete_addon(clusterName=CLUSTER, addonName=POD_IDENTITY_AGENT)

    assert_red_then_fixed(world, "pod identity agent", "is not installed")


def test_a_service_account_without_its_pod_identity_association_is_red(world: World) -> None:
    client = boto3.client("eks")
    [association] = client.list_pod_identity_associations(clusterName=CLUSTER)["associations"]
    client.delete_pod_identity_association(clusterName=CLUSTER, associationId=association["associationId"])

    assert_red_then_fixed(world, "pod identity association", "has no association")


def test_a_bucket_without_eventbridge_notifications_is_red(world: World) -> None:
    bucket = world.stack.name_of("CaptureBucket")
    boto3.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})

    assert_red_then_fixed(world, "bucket events", "does not send events to EventBridge")


def test_under_irsa_the_service_account_must_name_its_role_and_no_agent_is_needed(world: World) -> None:
    irsa = Stack(world.stack.template, "eks-capture-irsa", {**STACK_PARAMETERS, "PodCredentials": "irsa"})
    describe_stack(irsa, "eks-capture-irsa")
    role = "arn:aws:iam::123456789012:role/capture-pods-irsa"
    try:
        code, lines, output = doctor(world, CLUSTER, "--stack", "eks-capture-irsa")
        assert code == 1
        assert lines["pod credentials (IRSA)"].startswith("FAIL"), output
        assert "pod identity agent" not in lines
        world.kubectl.check(
            "-n", NAMESPACE, "annotate", "serviceaccount", ACCOUNT, f"eks.amazonaws.com/role-arn={role}"
        )
        _, lines, output = doctor(world, CLUSTER, "--stack", "eks-capture-irsa")
        assert lines["pod credentials (IRSA)"].startswith("ok"), output
        assert lines["pod credentials (IRSA)"].endswith(f"{NAMESPACE}/{ACCOUNT} -> {role}")
    finally:
        boto3.client("cloudformation").delete_stack(StackName="eks-capture-irsa")
        world.kubectl.check(
            "-n", NAMESPACE, "annotate", "serviceaccount", ACCOUNT, "eks.amazonaws.com/role-arn-"
        )


def test_a_fact_that_cannot_be_read_is_red_unknown_never_green(world: World) -> None:
    code, lines, output = doctor(world, CLUSTER)  # no --stack: no role or bucket to check

    assert code == 1
    assert lines["access entry: trigger"].startswith("UNKNOWN"), output
    assert "pass --stack NAME or --trigger-role" in lines["access entry: trigger"]
    assert lines["bucket events"].startswith("UNKNOWN")
    assert lines["capture namespace"].startswith("ok")
