"""Admission in the emulated API server: each refusal with the real status and words, seen by the official
client, and the Job and DaemonSet controllers' answer to a refused pod (FailedCreate, back-off, no stall)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcloud.kube import EVENTS, JOBS, RESOURCEQUOTAS, SERVICEACCOUNTS, KubeEmulator
from localcloud.kube.resources import NAMESPACES
from tests.fixtures.kube import apps_api, batch_api, send

HOST_POD_SPEC: dict[str, Any] = {
    "restartPolicy": "Never",
    "hostNetwork": True,
    "containers": [
        {
            "name": "capture",
            "image": "registry.example/agent:1.0",
            "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}},
        }
    ],
}
RESTRICTED_REFUSAL = (
    'violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true), '
    'allowPrivilegeEscalation != false (container "capture" must set '
    "securityContext.allowPrivilegeEscalation=false), "
    'unrestricted capabilities (container "capture" must not include "NET_RAW" in '
    "securityContext.capabilities.add), "
    'runAsNonRoot != true (pod or container "capture" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "capture" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def _namespace(core: Any, name: str, enforce: str | None = None) -> None:
    labels = {"pod-security.kubernetes.io/enforce": enforce} if enforce else {}
    core.create_namespace({"metadata": {"name": name, "labels": labels}})


def _refusal(call: Any, *args: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as refused:
        call(*args)
    return refused.value.status, json.loads(refused.value.body or "{}")


def _job(name: str, spec: dict[str, Any], deadline: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }
    if deadline:
        body["spec"]["activeDeadlineSeconds"] = deadline
    return body


def _events(core: Any, namespace: str, name: str) -> list[Any]:
    return list(core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items)


def test_every_namespace_gets_a_default_service_account(kube: KubeEmulator, core: Any) -> None:
    _namespace(core, "team")
    assert [a.metadata.name for a in core.list_namespaced_service_account("team").items] == ["default"]
    assert kube.get(SERVICEACCOUNTS, "kube-system", "default") is not None


def test_a_pod_whose_service_account_is_missing_is_forbidden_before_its_name_is_generated(
    kube: KubeEmulator, core: Any
) -> None:
    _namespace(core, "team")
    pod = {
        "metadata": {"generateName": "cap-"},
        "spec": {"serviceAccountName": "uploader", "containers": [{"name": "a", "image": "img:1"}]},
    }
    status, body = _refusal(core.create_namespaced_pod, "team", pod)
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'pods "cap-" is forbidden: error looking up service account team/uploader: '
        'serviceaccount "uploader" not found'
    )
    core.create_namespaced_service_account("team", {"metadata": {"name": "uploader"}})
    assert core.create_namespaced_pod("team", pod).metadata.name.startswith("cap-")


@pytest.mark.parametrize(
    ("enforce", "refused"),
    [
        (None, None),
        ("privileged", None),
        (
            "baseline",
            'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), non-default '
            'capabilities (container "capture" must not include "NET_RAW" in '
            "securityContext.capabilities.add)",
        ),
        ("restricted", RESTRICTED_REFUSAL),
    ],
)
def test_pod_security_admission_enforces_the_namespace_level(
    kube: KubeEmulator, core: Any, enforce: str | None, refused: str | None
) -> None:
    _namespace(core, "captures", enforce)
    pod = {"metadata": {"name": "cap"}, "spec": HOST_POD_SPEC}
    if refused is None:
        assert core.create_namespaced_pod("captures", pod).metadata.name == "cap"
        return
    status, body = _refusal(core.create_namespaced_pod, "captures", pod)
    assert (status, body["reason"], body["details"]) == (403, "Forbidden", {"name": "cap", "kind": "pods"})
    assert body["message"] == f'pods "cap" is forbidden: {refused}'


RESTRICTED_VIOLATIONS = RESTRICTED_REFUSAL.split(": ", 1)[1]
BASELINE_VIOLATIONS = (
    'host namespaces (hostNetwork=true), non-default capabilities (container "capture" must not include '
    '"NET_RAW" in securityContext.capabilities.add)'
)
WARN = "pod-security.kubernetes.io/warn"


def header(warning: str) -> str:
    """A warning as the API server writes it in a ``Warning`` header."""
    return '299 - "' + warning.replace('"', '\\"') + '"'


@pytest.mark.parametrize(
    ("path", "body", "labels", "status", "warnings"),
    [
        (
            "pods",
            {"metadata": {"name": "cap"}, "spec": HOST_POD_SPEC},
            {WARN: "restricted"},
            201,
            [f'would violate PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}'],
        ),
        (
            "pods",
            {"metadata": {"name": "cap"}, "spec": HOST_POD_SPEC},
            {"pod-security.kubernetes.io/enforce": "baseline", WARN: "restricted"},
            403,
            [],
        ),
        (
            "pods",
            {"metadata": {"name": "cap"}, "spec": HOST_POD_SPEC},
            {WARN: "restricted-ish"},
            201,
            [],
        ),
        (
            "jobs",
            _job("cap", HOST_POD_SPEC),
            {WARN: "baseline", "pod-security.kubernetes.io/warn-version": "v1.30"},
            201,
            [f'would violate PodSecurity "baseline:v1.30": {BASELINE_VIOLATIONS}'],
        ),
        (
            "jobs",
            _job("cap", HOST_POD_SPEC),
            {"pod-security.kubernetes.io/enforce": "restricted"},
            201,
            [],
        ),
        (
            "daemonsets",
            {
                "metadata": {"name": "cap"},
                "spec": {
                    "selector": {"matchLabels": {"app": "cap"}},
                    "template": {
                        "metadata": {"labels": {"app": "cap"}},
                        "spec": {**HOST_POD_SPEC, "restartPolicy": "Always"},
                    },
                },
            },
            {WARN: "restricted"},
            201,
            [f'would violate PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}'],
        ),
    ],
    ids=[
        "pod-warned",
        "pod-refused-by-enforce-gets-no-warning",
        "unparsable-warn-level-fails-open",
        "job-template-warned-at-its-version",
        "job-under-enforce-only-is-admitted-silently",
        "daemonset-template-warned",
    ],
)
def test_pod_security_warn_level_answers_with_the_servers_warning(
    kube: KubeEmulator,
    kube_client: client.ApiClient,
    path: str,
    body: dict[str, Any],
    labels: dict[str, str],
    status: int,
    warnings: list[str],
) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "captures", "labels": labels}})
    group = {"pods": "/api/v1", "jobs": "/apis/batch/v1", "daemonsets": "/apis/apps/v1"}[path]
    answer = send(kube_client, "POST", f"{group}/namespaces/captures/{path}", json.dumps(body).encode())
    assert (answer.status, answer.warnings) == (status, [header(warning) for warning in warnings])


def test_a_resource_quota_refuses_the_pod_past_its_hard_limit(kube: KubeEmulator, core: Any) -> None:
    _namespace(core, "team")
    core.create_namespaced_resource_quota(
        "team", {"metadata": {"name": "capture"}, "spec": {"hard": {"pods": "1"}}}
    )
    spec = {"containers": [{"name": "a", "image": "img:1"}]}
    core.create_namespaced_pod("team", {"metadata": {"name": "first"}, "spec": spec})
    status, body = _refusal(
        core.create_namespaced_pod, "team", {"metadata": {"name": "second"}, "spec": spec}
    )
    assert status == 403
    assert body["message"] == (
        'pods "second" is forbidden: exceeded quota: capture, requested: pods=1, used: pods=1, '
        "limited: pods=1"
    )
    kube.settle()
    quota = core.read_namespaced_resource_quota("capture", "team")
    assert (quota.status.hard, quota.status.used) == ({"pods": "1"}, {"pods": "1"})
    assert kube.objects(RESOURCEQUOTAS, "team")[0]["status"]["used"] == {"pods": "1"}


def test_a_compute_quota_refuses_a_pod_that_does_not_set_the_limits_it_constrains(
    kube: KubeEmulator, core: Any
) -> None:
    _namespace(core, "team")
    hard = {"limits.cpu": "2", "limits.memory": "1Gi"}
    core.create_namespaced_resource_quota("team", {"metadata": {"name": "compute"}, "spec": {"hard": hard}})
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "img:1"}]}}
    status, body = _refusal(core.create_namespaced_pod, "team", pod)
    assert status == 403
    assert body["message"] == (
        'pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: a; limits.memory for: a'
    )


@pytest.mark.parametrize(("code", "reason"), [(403, "Forbidden"), (400, "")])
def test_a_validating_webhook_denies_jobs_with_its_own_status_and_message(
    kube: KubeEmulator, kube_client: client.ApiClient, code: int, reason: str
) -> None:
    kube.webhooks.deny(
        "validate.kyverno.svc-fail",
        "policy Job/default/cap for resource violation: host-network: hostNetwork is not allowed",
        "jobs",
        code=code,
        reason=reason,
    )
    status, body = _refusal(
        batch_api(kube_client).create_namespaced_job, "default", _job("cap", HOST_POD_SPEC)
    )
    assert status == code
    assert body.get("reason", "") == reason
    assert body["message"] == (
        'admission webhook "validate.kyverno.svc-fail" denied the request: '
        "policy Job/default/cap for resource violation: host-network: hostNetwork is not allowed"
    )
    assert kube.objects(JOBS, "default") == []


def test_a_refused_job_pod_leaves_the_job_inactive_with_a_failed_create_event_and_other_jobs_run(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("n1")
    _namespace(core, "locked", "restricted")
    batch = batch_api(kube_client)
    batch.create_namespaced_job("locked", _job("cap", HOST_POD_SPEC, deadline=2))
    batch.create_namespaced_job("default", _job("fine", HOST_POD_SPEC))
    kube.wait_for(lambda: bool(_events(core, "locked", "cap")), what="a FailedCreate event")
    [event] = _events(core, "locked", "cap")
    assert (event.type, event.reason, event.source.component) == ("Warning", "FailedCreate", "job-controller")
    assert (event.involved_object.kind, event.involved_object.namespace) == ("Job", "locked")
    assert event.message.startswith('Error creating: pods "cap-')
    assert event.message.endswith(f'" is forbidden: {RESTRICTED_REFUSAL}')
    assert core.list_namespaced_pod("locked").items == []
    assert batch.read_namespaced_job("cap", "locked").status.active is None
    kube.wait_for(
        lambda: [p.status.phase for p in core.list_namespaced_pod("default").items] == ["Running"],
        what="the other namespace's Job running its pod",
    )
    kube.wait_for(
        lambda: sum(e.count for e in _events(core, "locked", "cap")) >= 2,
        timeout=4,
        what="the retry after the back-off",
    )
    kube.wait_for(
        lambda: bool(batch.read_namespaced_job("cap", "locked").status.conditions), timeout=5, what="deadline"
    )
    failed = batch.read_namespaced_job("cap", "locked").status.conditions[-1]
    assert (failed.type, failed.reason) == ("Failed", "DeadlineExceeded")
    selected = core.list_namespaced_event(
        "locked", field_selector="reason=FailedCreate,involvedObject.kind=Job"
    )
    assert {e.involved_object.name for e in selected.items} == {"cap"}
    assert len(kube.objects(EVENTS, "locked")) == len(selected.items) <= 3  # 1 s, then 2 s of back-off


def test_a_daemonset_whose_pods_are_refused_records_failed_create_and_schedules_nothing(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("n1")
    _namespace(core, "team")
    kube.webhooks.deny(
        "validation.gatekeeper.sh", "[psp-host-network] hostNetwork is not allowed", "pods", code=403
    )
    labels = {"app": "recorder"}
    apps_api(kube_client).create_namespaced_daemon_set(
        "team",
        {
            "metadata": {"name": "recorder"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {**HOST_POD_SPEC, "restartPolicy": "Always"},
                },
            },
        },
    )
    kube.wait_for(lambda: bool(_events(core, "team", "recorder")), what="a FailedCreate event")
    [event] = _events(core, "team", "recorder")
    assert (event.reason, event.source.component, event.involved_object.kind) == (
        "FailedCreate",
        "daemonset-controller",
        "DaemonSet",
    )
    assert event.message == (
        'Error creating: admission webhook "validation.gatekeeper.sh" denied the request: '
        "[psp-host-network] hostNetwork is not allowed"
    )
    assert core.list_namespaced_pod("team").items == []


def test_the_same_refusal_again_is_counted_on_one_event(
    kube: KubeEmulator, kube_client: client.ApiClient, core: Any
) -> None:
    kube.add_node("n1")
    spec = {**HOST_POD_SPEC, "serviceAccountName": "eks-capture-uploader"}
    batch_api(kube_client).create_namespaced_job("default", _job("cap", spec))
    kube.wait_for(
        lambda: sum(e.count for e in _events(core, "default", "cap")) >= 2,
        timeout=4,
        what="the retry after the back-off",
    )
    [event] = _events(core, "default", "cap")
    assert event.message == (
        'Error creating: pods "cap-" is forbidden: error looking up service account '
        'default/eks-capture-uploader: serviceaccount "eks-capture-uploader" not found'
    )
    assert event.first_timestamp < event.last_timestamp
