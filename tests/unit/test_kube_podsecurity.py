"""Pod Security admission's checks, worded and ordered as k8s.io/pod-security-admission words them."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.kube.podsecurity import Policy, enforced_policy, refusal

SAFE_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
CAPTURE_POD: dict[str, Any] = {
    "hostNetwork": True,
    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "capture",
            "securityContext": {
                "runAsUser": 0,
                "runAsNonRoot": False,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
            },
        },
        {"name": "upload", "securityContext": {**SAFE_CONTEXT, "runAsUser": 1000}},
    ],
    "volumes": [{"name": "spool", "emptyDir": {}}],
}


def _pod(**spec: Any) -> dict[str, Any]:
    return {"containers": [{"name": "app", "securityContext": dict(SAFE_CONTEXT)}], **spec}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, Policy("privileged", "latest")),
        ({"pod-security.kubernetes.io/enforce": "baseline"}, Policy("baseline", "latest")),
        (
            {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.30",
            },
            Policy("restricted", "v1.30"),
        ),
        ({"pod-security.kubernetes.io/enforce": "strict"}, Policy("restricted", "latest")),
        (
            {
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/enforce-version": "1.30",
            },
            Policy("baseline", "latest"),
        ),
        ({"pod-security.kubernetes.io/warn": "restricted"}, Policy("privileged", "latest")),
    ],
)
def test_the_enforced_policy_comes_from_the_namespace_labels_and_an_unparsable_level_fails_closed(
    labels: dict[str, str], expected: Policy
) -> None:
    assert enforced_policy(labels) == expected


def test_a_privileged_namespace_admits_the_capture_pod() -> None:
    assert refusal({"pod-security.kubernetes.io/enforce": "privileged"}, CAPTURE_POD) is None
    assert refusal(None, CAPTURE_POD) is None


def test_a_restricted_namespace_refuses_the_capture_pod_naming_every_violation_in_order() -> None:
    assert refusal({"pod-security.kubernetes.io/enforce": "restricted"}, CAPTURE_POD) == (
        'violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
        'unrestricted capabilities (container "capture" must not include "NET_ADMIN", "NET_RAW" in '
        "securityContext.capabilities.add), "
        'runAsNonRoot != true (container "capture" must not set securityContext.runAsNonRoot=false), '
        'runAsUser=0 (container "capture" must not set runAsUser=0)'
    )


def test_a_baseline_namespace_refuses_the_capture_pod_for_host_network_and_raw_sockets() -> None:
    assert refusal({"pod-security.kubernetes.io/enforce": "baseline"}, CAPTURE_POD) == (
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
        'non-default capabilities (container "capture" must not include "NET_ADMIN", "NET_RAW" in '
        "securityContext.capabilities.add)"
    )


@pytest.mark.parametrize(
    ("level", "spec", "expected"),
    [
        ("restricted", _pod(), None),
        ("baseline", _pod(hostPID=True, hostIPC=True), "host namespaces (hostPID=true, hostIPC=true)"),
        (
            "baseline",
            {"containers": [{"name": "a", "securityContext": {"privileged": True}}]},
            'privileged (container "a" must not set securityContext.privileged=true)',
        ),
        (
            "baseline",
            {
                "containers": [
                    {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                    {"name": "b", "ports": [{"containerPort": 90, "hostPort": 9090}]},
                ]
            },
            'hostPort (containers "a", "b" use hostPorts 8080, 9090)',
        ),
        (
            "baseline",
            {"containers": [{"name": "a"}], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
            'hostPath volumes (volume "root")',
        ),
        (
            "restricted",
            _pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}, {"name": "spool", "emptyDir": {}}]),
            'restricted volume types (volumes ["root"] have restricted types)',
        ),
        (
            "baseline",
            {"containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]},
            'seccompProfile (container "a" must not set securityContext.seccompProfile.type to "Unconfined")',
        ),
        (
            "restricted",
            {"containers": [{"name": "a"}]},
            'allowPrivilegeEscalation != false (container "a" must set '
            "securityContext.allowPrivilegeEscalation=false), "
            'unrestricted capabilities (container "a" must set securityContext.capabilities.drop=["ALL"]), '
            'runAsNonRoot != true (pod or container "a" must set securityContext.runAsNonRoot=true), '
            'seccompProfile (pod or container "a" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")',
        ),
        (
            "restricted",
            {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "initContainers": [{"name": "init", "securityContext": {"allowPrivilegeEscalation": True}}],
                "containers": [{"name": "a", "securityContext": dict(SAFE_CONTEXT)}],
            },
            'allowPrivilegeEscalation != false (container "init" must set '
            "securityContext.allowPrivilegeEscalation=false), "
            'unrestricted capabilities (container "init" must set securityContext.capabilities.drop=["ALL"])',
        ),
    ],
)
def test_each_check_says_what_it_refuses_in_the_real_words(
    level: str, spec: dict[str, Any], expected: str | None
) -> None:
    found = refusal({"pod-security.kubernetes.io/enforce": level}, spec)
    assert found == (None if expected is None else f'violates PodSecurity "{level}:latest": {expected}')
