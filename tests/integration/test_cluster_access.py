"""Who may do what in the cluster, under EKS's default deny: exactly the stack's access entries and
deploy/kubernetes/ applied with kubectl, checked with Debian's kubectl (each function's own token) and
the API's own access reviews."""

from __future__ import annotations

import subprocess
from typing import Any

import boto3
import pytest
from kubernetes import client

from eks_capture.errors import ClusterAccessDenied
from eks_capture.kube import eks
from eks_capture.kube.calls import Cluster
from localcloud.access import function_session, kubectl_as
from localcloud.aws import ACCOUNT_ID
from localcloud.kube import JOBS, KubeEmulator
from localcloud.kube.access import CACHE_SECONDS
from localcloud.kubectl import Kubectl
from localcloud.template import Stack
from tests.fixtures.waiting import eventually

NAMESPACE = "eks-capture"
SHOP = "shop-prod"
PRIVILEGED_POD = {
    "restartPolicy": "Never",
    "hostNetwork": True,
    "containers": [{"name": "shell", "image": "busybox", "securityContext": {"privileged": True}}],
}

# (verb, resource, namespace or "" for the whole cluster): every call each function makes.
TRIGGER_CALLS = [
    ("list", "nodes", ""),
    ("list", "pods", ""),
    ("list", "services", ""),
    ("get", "services", "payments"),
    ("list", "endpointslices.discovery.k8s.io", "payments"),
    ("list", "jobs.batch", NAMESPACE),
    ("create", "jobs.batch", NAMESPACE),
    ("delete", "jobs.batch", NAMESPACE),
    ("list", "pods", NAMESPACE),
    ("patch", "pods", NAMESPACE),
    ("list", "daemonsets.apps", NAMESPACE),
    ("create", "daemonsets.apps", NAMESPACE),
    ("update", "daemonsets.apps", NAMESPACE),
    ("delete", "daemonsets.apps", NAMESPACE),
]
TEARDOWN_CALLS = [
    ("list", "jobs.batch", NAMESPACE),
    ("delete", "jobs.batch", NAMESPACE),
    ("list", "pods", NAMESPACE),
    ("delete", "pods", NAMESPACE),
    ("list", "events", NAMESPACE),
    ("list", "daemonsets.apps", NAMESPACE),
]
# What the teardown, which only reads and deletes, may not do: any of these would let it start a pod.
TEARDOWN_MAY_NOT = [
    ("create", "jobs.batch", NAMESPACE),
    ("create", "pods", NAMESPACE),
    ("create", "daemonsets.apps", NAMESPACE),
    ("update", "daemonsets.apps", NAMESPACE),
    ("patch", "pods", NAMESPACE),
    ("patch", "jobs.batch", NAMESPACE),
]
# What no function may do: outside the capture namespace, secrets, RBAC, impersonation.
NOBODY_MAY = [
    ("create", "jobs.batch", "default"),
    ("create", "pods", "kube-system"),
    ("get", "secrets", NAMESPACE),
    ("create", "rolebindings.rbac.authorization.k8s.io", NAMESPACE),
    ("escalate", "roles.rbac.authorization.k8s.io", NAMESPACE),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ""),
    ("impersonate", "serviceaccounts", NAMESPACE),
    ("impersonate", "users", ""),
    ("delete", "namespaces", ""),
]


@pytest.fixture
def as_function(shop: KubeEmulator, stack: Stack) -> Any:
    """kubectl for one of the stack's functions, with a token of its own role's session."""

    def make(function: str) -> Kubectl:
        return kubectl_as(shop, function_session(stack, function))

    return make


def can_i(kubectl: Kubectl, verb: str, resource: str, namespace: str) -> str:
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    return kubectl.run("auth", "can-i", verb, resource, *scope).stdout.strip()


def answers(kubectl: Kubectl, calls: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    return {call: can_i(kubectl, *call) for call in calls}


def test_the_trigger_may_make_each_of_its_calls(as_function: Any) -> None:
    trigger = as_function("TriggerFunction")
    assert answers(trigger, TRIGGER_CALLS) == dict.fromkeys(TRIGGER_CALLS, "yes")


def test_the_teardown_may_make_each_of_its_calls(as_function: Any) -> None:
    teardown = as_function("TeardownFunction")
    assert answers(teardown, TEARDOWN_CALLS) == dict.fromkeys(TEARDOWN_CALLS, "yes")


def test_the_teardown_may_create_or_change_nothing(as_function: Any) -> None:
    teardown = as_function("TeardownFunction")
    assert answers(teardown, TEARDOWN_MAY_NOT) == dict.fromkeys(TEARDOWN_MAY_NOT, "no")


def test_the_teardowns_identity_is_refused_a_job_by_rbac(shop: KubeEmulator, stack: Stack) -> None:
    teardown = Cluster(SHOP, eks.api_client(SHOP, session=function_session(stack, "TeardownFunction")))
    job = {"metadata": {"name": "root-on-a-node"}, "spec": {"template": {"spec": PRIVILEGED_POD}}}
    with pytest.raises(ClusterAccessDenied) as refused:
        teardown.create_job(NAMESPACE, job)
    role, session = stack.name_of("TeardownRole"), stack.name_of("TeardownFunction")
    user = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}"  # EKS's username for a role
    assert (
        f'jobs.batch is forbidden: User "{user}" cannot create resource "jobs" in API group "batch" '
        f'in the namespace "{NAMESPACE}"'
    ) in refused.value.message
    assert shop.objects(JOBS, NAMESPACE) == []


@pytest.mark.parametrize("function", ["TriggerFunction", "TeardownFunction"])
def test_no_function_may_leave_its_lane(as_function: Any, function: str) -> None:
    assert answers(as_function(function), NOBODY_MAY) == dict.fromkeys(NOBODY_MAY, "no")


def test_a_function_role_whose_access_entry_is_deleted_is_unauthorized_within_seconds(
    shop: KubeEmulator, stack: Stack, as_function: Any
) -> None:
    trigger = as_function("TriggerFunction")
    assert trigger.run("get", "jobs", "-n", NAMESPACE).returncode == 0

    boto3.client("eks").delete_access_entry(clusterName=SHOP, principalArn=stack.arn("TriggerRole"))

    def refused() -> subprocess.CompletedProcess[str] | None:
        done = trigger.run("get", "jobs", "-n", NAMESPACE)
        return done if done.returncode else None

    done = eventually(
        refused,
        timeout=CACHE_SECONDS + 5,
        what="kubectl as the trigger's role still answered after its access entry was deleted",
    )
    assert done.stderr.strip().splitlines()[-1] == "error: You must be logged in to the server (Unauthorized)"
    role, session = stack.name_of("TriggerRole"), stack.name_of("TriggerFunction")
    assert (
        shop.auth_failures[-1]
        == f"no access entry for arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}"
    )


def test_an_access_review_answers_for_the_caller_in_the_apis_shape(shop: KubeEmulator, stack: Stack) -> None:
    api = eks.api_client(SHOP, session=function_session(stack, "TriggerFunction"))
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": "create",
                "group": "batch",
                "resource": "jobs",
                "namespace": NAMESPACE,
            }
        },
    }
    authorization: Any = client.AuthorizationV1Api(api)
    answer = authorization.create_self_subject_access_review(review)
    assert answer.status.allowed is True
    assert answer.status.reason.startswith('RBAC: allowed by RoleBinding "')
    assert answer.spec.resource_attributes.resource == "jobs"
