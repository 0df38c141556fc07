"""The doctor's checks as pure functions: each fact's green and red, and a fact not fetched is never green."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from eks_capture_cli import checks, quotas
from eks_capture_cli.checks import Unfetched, Verdict
from eks_capture_cli.permissions import NEEDED, REFUSED, Identity, Permission
from eks_capture_cli.preflight import capture_pod_spec

ROLE = "arn:aws:iam::123456789012:role/eks-capture-triggerrole"
USERNAME = "arn:aws:sts::123456789012:assumed-role/eks-capture-triggerrole/{{SessionName}}"
POD = capture_pod_spec("eks-capture", "eks-capture-uploader")
NOT_READ = Unfetched("HTTP 403 forbidden")


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [
        ("API", Verdict.OK),
        ("API_AND_CONFIG_MAP", Verdict.OK),
        ("CONFIG_MAP", Verdict.FAIL),
        (NOT_READ, Verdict.UNKNOWN),
    ],
)
def test_access_entries_need_an_authentication_mode_with_api(mode: Any, verdict: Verdict) -> None:
    line = checks.authentication_mode("shop-prod", mode)

    assert line.verdict is verdict
    assert bool(line.fix) is (verdict is Verdict.FAIL)


@pytest.mark.parametrize(
    ("entry", "verdict", "says"),
    [
        ({"kubernetesGroups": ["eks-capture-operators"], "username": USERNAME}, Verdict.OK, "-> groups"),
        (None, Verdict.FAIL, "has no access entry"),
        (
            {"kubernetesGroups": ["viewers"], "username": USERNAME},
            Verdict.FAIL,
            "lack ['eks-capture-operators']",
        ),
        (
            {"kubernetesGroups": ["eks-capture-operators"], "username": "alice"},
            Verdict.FAIL,
            "username 'alice'",
        ),
        (NOT_READ, Verdict.UNKNOWN, "forbidden"),
    ],
)
def test_an_access_entry_gives_the_expected_groups_and_eks_username(
    entry: Any, verdict: Verdict, says: str
) -> None:
    line = checks.access_entry("shop-prod", Identity.TRIGGER, ROLE, entry, ("eks-capture-operators",))

    assert line.verdict is verdict
    assert says in line.detail


def test_a_missing_access_entry_is_fixed_by_creating_it_with_the_groups() -> None:
    line = checks.access_entry("shop-prod", Identity.TRIGGER, ROLE, None, ("eks-capture-operators",))

    assert line.fix == (
        f"aws eks create-access-entry --cluster-name shop-prod --principal-arn {ROLE} "
        "--kubernetes-groups eks-capture-operators"
    )


def _answers(allowed: bool, permissions: tuple[Permission, ...]) -> dict[Permission, Any]:
    return dict.fromkeys(permissions, allowed)


@pytest.mark.parametrize(
    ("needed", "refused", "verdict", "says"),
    [
        (True, False, Verdict.OK, "6 call(s) allowed, 7 refused as they must be"),
        (False, False, Verdict.FAIL, "denied list jobs.batch"),
        (True, True, Verdict.FAIL, "allowed what it must not: create jobs.batch"),
        (NOT_READ, False, Verdict.UNKNOWN, "could not ask the cluster (SubjectAccessReview) about list jobs"),
    ],
)
def test_permissions_are_every_call_allowed_and_nothing_refused_allowed(
    needed: Any, refused: Any, verdict: Verdict, says: str
) -> None:
    line = checks.permissions(
        Identity.TEARDOWN,
        "eks-capture",
        _answers(needed, NEEDED[Identity.TEARDOWN]),
        _answers(refused, REFUSED[Identity.TEARDOWN]),
    )

    assert line.verdict is verdict
    assert says in line.detail


@pytest.mark.parametrize(
    ("labels", "verdict"),
    [
        ({"pod-security.kubernetes.io/enforce": "privileged"}, Verdict.OK),
        ({}, Verdict.OK),  # EKS's cluster default is privileged
        ({"pod-security.kubernetes.io/enforce": "baseline"}, Verdict.FAIL),
        (
            {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "x"},
            Verdict.FAIL,
        ),
        (None, Verdict.FAIL),
        (NOT_READ, Verdict.UNKNOWN),
    ],
)
def test_the_capture_namespace_must_let_privileged_pods_run(labels: Any, verdict: Verdict) -> None:
    assert checks.namespace_security("eks-capture", labels).verdict is verdict


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        ({"pod-security.kubernetes.io/enforce": "privileged"}, "eks-capture enforces privileged"),
        (
            {
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "baseline",
            },
            "eks-capture enforces privileged, warns at baseline",
        ),
        (
            {"pod-security.kubernetes.io/warn": "restricted"},
            "eks-capture has no enforce label (EKS's default: privileged), warns at restricted",
        ),
        (
            {
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "nonsense",
            },
            "eks-capture enforces privileged",
        ),
    ],
)
def test_a_warn_label_is_noted_on_the_green_line(labels: dict[str, str], detail: str) -> None:
    line = checks.namespace_security("eks-capture", labels)
    assert (line.verdict, line.detail) == (Verdict.OK, detail)


def test_a_stricter_namespace_is_fixed_by_labelling_it_privileged() -> None:
    line = checks.namespace_security("eks-capture", {"pod-security.kubernetes.io/enforce": "restricted"})

    assert (
        line.fix == "kubectl label ns eks-capture pod-security.kubernetes.io/enforce=privileged --overwrite"
    )


def _quota(hard: dict[str, str], used: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "team"}, "spec": {"hard": hard}, "status": {"used": used or {}}}


@pytest.mark.parametrize(
    ("hard", "used", "verdict", "says"),
    [
        ({"pods": "5"}, {"pods": "4"}, Verdict.OK, "room"),
        ({"pods": "5"}, {"pods": "5"}, Verdict.FAIL, "pods: asks 1, used 5 of 5"),
        (
            {"requests.cpu": "1"},
            {"requests.cpu": "900m"},
            Verdict.FAIL,
            "requests.cpu: asks 150m, used 900m of 1",
        ),
        ({"cpu": "1"}, {"cpu": "800m"}, Verdict.OK, "room"),
        ({"limits.memory": "1Gi"}, {"limits.memory": "600Mi"}, Verdict.FAIL, "limits.memory"),
        ({"requests.storage": "10Gi"}, {}, Verdict.OK, "room"),  # volumes' claims, not pods
        (
            {"limits.ephemeral-storage": "1Gi"},
            {},
            Verdict.OK,
            "room",
        ),  # never demanded: pods.go's validationSet
        ({"requests.nvidia.com/gpu": "1"}, {"requests.nvidia.com/gpu": "1"}, Verdict.OK, "room"),
    ],
)
def test_a_quota_admits_a_capture_pod_only_with_room_for_what_it_asks(
    hard: dict[str, str], used: dict[str, str], verdict: Verdict, says: str
) -> None:
    line = quotas.quota("eks-capture", _quota(hard, used), POD)

    assert line.verdict is verdict
    assert says in line.detail


def test_the_capture_pod_asks_what_its_manifest_says() -> None:
    usage = quotas.pod_usage(POD)

    assert {k: v for k, v in usage.items() if k.startswith(("requests.", "limits."))} == {
        "requests.cpu": Decimal("0.15"),
        "requests.memory": 192 * 2**20,
        "limits.cpu": Decimal("1.5"),
        "limits.memory": 512 * 2**20,
    }


def test_a_quota_on_cpu_or_memory_demands_every_container_sets_it() -> None:
    pod = {
        "containers": [{"name": "capture", "resources": {"requests": {"cpu": "100m"}}}, {"name": "upload"}]
    }

    line = quotas.quota("eks-capture", _quota({"limits.cpu": "4", "requests.cpu": "4"}), pod)

    assert line.verdict is Verdict.FAIL
    assert "must specify limits.cpu for: capture,upload; requests.cpu for: upload" in line.detail
    assert line.fix.endswith(
        """-p '[{"op": "remove", "path": "/spec/hard/limits.cpu"}, """
        """{"op": "remove", "path": "/spec/hard/requests.cpu"}]'"""
    )


@pytest.mark.parametrize(
    ("spec", "selects"),
    [
        ({"scopes": ["NotBestEffort", "NotTerminating"]}, True),
        ({"scopes": ["BestEffort"]}, False),
        ({"scopes": ["Terminating"]}, False),
        (
            {
                "scopeSelector": {
                    "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
                }
            },
            False,
        ),
        (
            {
                "scopeSelector": {
                    "matchExpressions": [{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]
                }
            },
            True,
        ),
    ],
)
def test_a_quota_counts_a_capture_pod_only_when_its_scopes_select_it(
    spec: dict[str, Any], selects: bool
) -> None:
    assert quotas.applies({"spec": spec}, POD) is selects


def test_an_exhausted_quota_is_fixed_by_raising_it_to_what_one_more_pod_needs() -> None:
    line = quotas.quota(
        "eks-capture", _quota({"pods": "3", "requests.cpu": "1"}, {"pods": "3", "requests.cpu": "0"}), POD
    )

    assert line.fix == (
        "kubectl -n eks-capture patch resourcequota team --type merge "
        """-p '{"spec": {"hard": {"pods": "4"}}}'"""
    )


@pytest.mark.parametrize(
    ("addon", "verdict"),
    [
        ({"status": "ACTIVE", "addonVersion": "v1.3.4-eksbuild.1"}, Verdict.OK),
        ({"status": "DEGRADED", "health": {"issues": [{"message": "pods crash"}]}}, Verdict.FAIL),
        (None, Verdict.FAIL),
        (NOT_READ, Verdict.UNKNOWN),
    ],
)
def test_the_pod_identity_agent_must_be_active(addon: Any, verdict: Verdict) -> None:
    assert checks.pod_identity_agent("shop-prod", addon).verdict is verdict


@pytest.mark.parametrize(
    ("associations", "verdict"),
    [
        ([{"roleArn": ROLE}], Verdict.OK),
        ([{"roleArn": "arn:aws:iam::1:role/other"}], Verdict.FAIL),
        ([], Verdict.FAIL),
    ],
)
def test_the_service_account_is_associated_with_the_stacks_pod_role(
    associations: Any, verdict: Verdict
) -> None:
    line = checks.pod_identity_association(
        "shop-prod", "eks-capture", "eks-capture-uploader", ROLE, associations
    )

    assert line.verdict is verdict


@pytest.mark.parametrize(
    ("account", "verdict"),
    [
        ({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}}}, Verdict.OK),
        ({"metadata": {"annotations": {}}}, Verdict.FAIL),
        (None, Verdict.FAIL),
        (NOT_READ, Verdict.UNKNOWN),
    ],
)
def test_under_irsa_the_service_account_names_its_role(account: Any, verdict: Verdict) -> None:
    line = checks.irsa_role("eks-capture", "eks-capture-uploader", account)

    assert line.verdict is verdict
    assert line.verdict is Verdict.OK or line.fix.startswith(
        "kubectl -n eks-capture annotate serviceaccount eks-capture-uploader eks.amazonaws.com/role-arn="
    )


@pytest.mark.parametrize(
    ("configuration", "verdict"),
    [({"EventBridgeConfiguration": {}}, Verdict.OK), ({}, Verdict.FAIL), (NOT_READ, Verdict.UNKNOWN)],
)
def test_the_bucket_must_send_its_events_to_eventbridge(configuration: Any, verdict: Verdict) -> None:
    assert checks.bucket_events("eks-capture-pcaps", configuration).verdict is verdict


def test_eventbridge_is_added_to_the_buckets_other_notifications_not_in_their_place() -> None:
    queue = {
        "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-west-2:1:q", "Events": ["s3:ObjectCreated:*"]}]
    }

    line = checks.bucket_events("eks-capture-pcaps", queue)

    assert '"QueueConfigurations"' in line.fix
    assert '"EventBridgeConfiguration": {}' in line.fix


def test_no_check_is_green_on_a_fact_it_could_not_read() -> None:
    lines = [
        checks.authentication_mode("c", NOT_READ),
        checks.access_entry("c", Identity.TRIGGER, NOT_READ, NOT_READ, ()),
        checks.permissions(Identity.TRIGGER, "ns", {Permission("list", "nodes"): NOT_READ}, {}),
        checks.namespace_security("ns", NOT_READ),
        checks.service_account("ns", "sa", NOT_READ),
        *quotas.quotas("ns", NOT_READ, POD),
        checks.pod_identity_agent("c", NOT_READ),
        checks.pod_identity_association("c", "ns", "sa", NOT_READ, NOT_READ),
        checks.bucket_events(NOT_READ, NOT_READ),
    ]

    assert {line.verdict for line in lines} == {Verdict.UNKNOWN}
    assert all(line.red for line in lines)
