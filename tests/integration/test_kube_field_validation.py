"""Server-side field validation (``fieldValidation``): unknown and duplicate fields, as the API server
refuses (Strict), warns of (Warn, the default) or ignores them, and drops them from what it stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client

from eks_capture.captures.options import CaptureOptions
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.manifests.daemonset import RecorderSpec, recorder_daemonset
from eks_capture.kube.manifests.job import CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from localcloud.kube import JOBS, KubeEmulator
from localcloud.kube.resources import DAEMONSETS, NAMESPACES
from tests.fixtures.kube import apps_api, batch_api, send
from tests.fixtures.manifests import SETTINGS

JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"
TYPO_JOB = (
    b'{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"typo"},"spec":{"foo":1,'
    b'"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox",'
    b'"imagePullPolicyy":"Always"}]}}}}'
)
UNKNOWN = ['unknown field "spec.foo"', 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"']
DUPLICATED_JOB = (
    b'{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"first","name":"dup"},"spec":{'
    b'"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}'
)


@pytest.mark.parametrize(
    ("query", "warnings"),
    [
        (
            "fieldValidation=Warn",
            [f'299 - "{error.replace(chr(34), chr(92) + chr(34))}"' for error in UNKNOWN],
        ),
        ("", [f'299 - "{error.replace(chr(34), chr(92) + chr(34))}"' for error in UNKNOWN]),
        ("fieldValidation=Ignore", []),
    ],
    ids=["warn", "default-is-warn", "ignore"],
)
def test_unknown_fields_are_dropped_with_a_warning_unless_ignored(
    kube: KubeEmulator, kube_client: client.ApiClient, query: str, warnings: list[str]
) -> None:
    answer = send(kube_client, "POST", JOBS_PATH, TYPO_JOB, query)
    assert answer.status == 201
    assert answer.warnings == warnings
    stored = kube.get(JOBS, "default", "typo")
    assert stored is not None
    assert "foo" not in stored["spec"]
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            TYPO_JOB,
            'Job in version "v1" cannot be handled as a Job: strict decoding error: ' + ", ".join(UNKNOWN),
        ),
        (
            DUPLICATED_JOB,
            'Job in version "v1" cannot be handled as a Job: strict decoding error: '
            'duplicate field "metadata.name"',
        ),
        (
            b'{"metadata":{"name":"nokind"},"spec":{"foo":1}}',
            "the object provided is unrecognized (must be of type Job): strict decoding error: "
            'unknown field "spec.foo" ({"metadata":{"name":"nokind"}, ...)',
        ),
    ],
    ids=["unknown", "duplicate", "no-kind"],
)
def test_strict_refuses_a_create_naming_every_field_and_creates_nothing(
    kube: KubeEmulator, kube_client: client.ApiClient, body: bytes, message: str
) -> None:
    answer = send(kube_client, "POST", JOBS_PATH, body, "fieldValidation=Strict")
    assert (answer.status, answer.body["reason"], answer.body["message"]) == (400, "BadRequest", message)
    assert kube.objects(JOBS, "default") == []


def test_strict_refuses_a_merge_patch_with_an_unknown_field_as_an_invalid_patch(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    assert send(kube_client, "POST", JOBS_PATH, TYPO_JOB, "fieldValidation=Ignore").status == 201
    patch = b'{"metadata":{"labels":{"a":"b"}},"spec":{"bar":1}}'
    answer = send(
        kube_client,
        "PATCH",
        f"{JOBS_PATH}/typo",
        patch,
        "fieldValidation=Strict",
        content_type="application/merge-patch+json",
    )
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert answer.body["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert answer.body["message"].endswith('": strict decoding error: unknown field "spec.bar"')
    assert answer.body["details"]["causes"][0]["field"] == "patch"
    stored = kube.get(JOBS, "default", "typo")
    assert stored is not None
    assert "labels" not in stored["metadata"] or "a" not in stored["metadata"]["labels"]


def test_an_unknown_directive_is_an_invalid_option(kube: KubeEmulator, kube_client: client.ApiClient) -> None:
    answer = send(kube_client, "POST", JOBS_PATH, TYPO_JOB, "fieldValidation=Loose")
    assert (answer.status, answer.body["reason"]) == (422, "Invalid")
    assert answer.body["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )
    assert kube.objects(JOBS, "default") == []


def test_the_products_job_and_recorder_daemonset_pass_strict_validation(
    kube: KubeEmulator, kube_client: client.ApiClient
) -> None:
    """The product's client keeps the server's default (Warn); Strict proves there is nothing to warn of."""
    namespace = SETTINGS.capture_namespace
    kube.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    started = datetime(2026, 11, 25, 11, 0, 0, tzinfo=UTC)
    options = CaptureOptions(duration_seconds=60, snaplen=262144, filter="tcp port 443")
    spec = CaptureSpec(capture_id_for_event("event-1", started), "demo-cluster", options, "INC-1", started)
    job = capture_job(spec, NodeInfo("node-a", "i-0123456789abcdef0", "us-west-2a"), SETTINGS)
    recorder = recorder_daemonset(RecorderSpec("demo-cluster", None, "tcp", 128, 10, 512, "INC-1"), SETTINGS)
    batch_api(kube_client).create_namespaced_job(namespace, job, field_validation="Strict")
    apps_api(kube_client).create_namespaced_daemon_set(namespace, recorder, field_validation="Strict")
    assert kube.get(JOBS, namespace, job["metadata"]["name"]) is not None
    assert kube.get(DAEMONSETS, namespace, recorder["metadata"]["name"]) is not None
