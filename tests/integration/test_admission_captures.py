"""A cluster that refuses the capture: each refusal in the real cluster's words, and the product's truthful
answer (never a capture claimed that S3 does not prove).

The trigger creates real Jobs in the emulated ``shop-prod``, whose admission refuses as EKS would (Pod
Security, a missing service account, a quota, a Kyverno/Gatekeeper-like webhook); the Job controller
records ``FailedCreate``; the sweep runs with its clock moved past the pending bound instead of waiting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from eks_capture.captures import reaper, trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.notifications import ReportOutcome, end_message
from eks_capture.captures.plan import Outcome
from eks_capture.errors import ClusterRefused
from eks_capture.ids import CaptureId
from eks_capture.kube.labels import LABEL_NODE
from eks_capture.kube.manifests.job import job_name
from eks_capture.report.building import S3Files, build
from eks_capture.settings import Settings
from eks_capture.store.keys import serialize, session_key
from eks_capture_cli import app
from localcloud.burst import burst_nodes
from localcloud.kube import (
    DAEMONSETS,
    EVENTS,
    JOBS,
    NAMESPACES,
    PODS,
    RESOURCEQUOTAS,
    SERVICEACCOUNTS,
    KubeEmulator,
)
from tests.events import load_event
from tests.fixtures.clock import Clock
from tests.fixtures.cluster import revoke
from tests.fixtures.item_sizes import DYNAMODB_ITEM_LIMIT, item_size
from tests.fixtures.sessions import stored_session
from tests.fixtures.uploads import upload_manifest

NAMESPACE = "eks-capture"
CLUSTER = "shop-prod"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"
WEBHOOK = "validate.kyverno.svc-fail"
WEBHOOK_SAYS = (
    "policy Job/eks-capture for resource violation: disallow-host-network: hostNetwork is not allowed"
)
LARGEST = "largest-nodegroup-01"  # its burst nodes' names are 51 characters, as EKS's longest


def _kyverno_blocked(job: dict[str, Any]) -> str:
    """What Kyverno answers for a Job two of its policies block: naming the Job, so no two nodes' alike."""
    metadata = job["metadata"]
    return (
        f"\n\nresource Job/{metadata['namespace']}/{metadata['name']} was blocked due to the following "
        "policies\n\nrequire-requests-limits:\n  validate-resources: 'validation error: CPU and memory "
        "resource requests and limits are required. rule validate-resources failed at path "
        "/spec/template/spec/containers/0/resources/requests/'\nrestrict-host-network:\n  host-network: "
        "'validation error: Use of host networking is not allowed. rule host-network failed at path "
        "/spec/template/spec/hostNetwork/'"
    )


def _start(deps: Deps, event: str) -> Outcome:
    outcome = trigger.handle(load_event(event), deps)
    assert outcome.capture_id is not None, outcome.message
    return outcome


def _refused(shop: KubeEmulator) -> list[str]:
    return [e["message"] for e in shop.objects(EVENTS, NAMESPACE) if e["reason"] == "FailedCreate"]


def _close(deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock) -> dict[str, str]:
    """Sweep past the pending bound, let the deletions finish, sweep again: the captures each closed."""
    clock.moment += timedelta(seconds=deps.settings.pending_bound_seconds + 5)
    [first] = reaper.sweep(reaper_deps, [CLUSTER])
    assert not first.errors, first.errors
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=30, what="capture jobs deleted")
    clock.moment += timedelta(seconds=300)
    [second] = reaper.sweep(reaper_deps, [CLUSTER])
    return {**first.closed, **second.closed}


def _held(deps: Deps, pk: str) -> str | None:
    """Which capture holds a lock or slot item of the table (None: free)."""
    item = boto3.client("dynamodb").get_item(
        TableName=deps.settings.capture_table, Key={"pk": {"S": pk}, "sk": {"S": pk.split("#", 1)[0]}}
    )
    return item.get("Item", {}).get("capture_id", {}).get("S")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _enforce(shop: KubeEmulator, level: str) -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    shop.registry.patch(
        NAMESPACES, None, NAMESPACE, "application/merge-patch+json", {"metadata": {"labels": labels}}
    )


def test_a_restricted_namespace_fails_the_capture_and_names_the_pod_security_violation(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    _enforce(shop, "restricted")
    started = _start(deps, "start-capture-instances")
    assert started.status == "running"  # the Job is admitted: Pod Security judges pods, not Jobs
    shop.wait_for(lambda: bool(_refused(shop)), what="the Job controller's FailedCreate")
    [job] = shop.objects(JOBS, NAMESPACE)
    assert shop.objects(PODS, NAMESPACE) == []
    assert not job["status"].get("active")

    closed = _close(deps, reaper_deps, shop, clock)

    assert closed == {started.capture_id: "failed"}
    session = stored_session(deps, started.capture_id)
    node = session.nodes[NODE_A]
    assert node.status == "never_started"
    assert node.reason.startswith('the cluster refused its pod (FailedCreate): Error creating: pods "')
    assert 'is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)' in (
        node.reason
    )
    assert session.verdict.startswith(
        "0 of 1 node(s) captured: 0 file(s), 0 packets, 0 dropped; not captured: "
    )
    assert f"{NODE_A} never started (the cluster refused its pod (FailedCreate)" in session.verdict
    assert _held(deps, f"LOCK#{CLUSTER}#{NODE_A}") is None
    subject, body = end_message(deps.settings, session, ReportOutcome(problem="no report in this test"))
    assert f"capture {started.capture_id} failed" in subject
    assert 'violates PodSecurity "restricted:latest"' in body
    table = ["--table", deps.settings.capture_table]
    shown = _cli("show", str(started.capture_id), *table)
    assert "never_started" in shown
    assert "violates PodSecurity" in shown
    listed = json.loads(_cli("list", "--cluster", CLUSTER, "--json", *table))
    assert [(r["status"], "violates PodSecurity" in r["verdict"]) for r in listed] == [("failed", True)]
    page = build(session, [], S3Files(boto3.client("s3"), deps.settings.capture_bucket), console="https://c")
    assert f"{NODE_A}: never started — the cluster refused its pod (FailedCreate)" in page.html
    assert "violates PodSecurity &quot;restricted:latest&quot;" in page.html


def _without_the_service_account(deps: Deps, shop: KubeEmulator) -> str:
    """Delete the capture pods' service account; how the admission message about it ends."""
    account = deps.settings.capture_service_account
    shop.registry.delete(SERVICEACCOUNTS, NAMESPACE, account)
    return (
        f"is forbidden: error looking up service account {NAMESPACE}/{account}: "
        f'serviceaccount "{account}" not found'
    )


def _with_an_exhausted_quota(deps: Deps, shop: KubeEmulator) -> str:
    """A quota of no pods in the capture namespace; how the admission message about it ends."""
    shop.create(
        RESOURCEQUOTAS, NAMESPACE, {"metadata": {"name": "captures"}, "spec": {"hard": {"pods": "0"}}}
    )
    return "is forbidden: exceeded quota: captures, requested: pods=1, used: pods=0, limited: pods=0"


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(_without_the_service_account, id="a missing service account"),
        pytest.param(_with_an_exhausted_quota, id="an exhausted quota"),
    ],
)
def test_a_refused_pod_fails_the_capture_with_the_admission_message(
    deps: Deps,
    reaper_deps: Deps,
    shop: KubeEmulator,
    clock: Clock,
    refuse: Callable[[Deps, KubeEmulator], str],
) -> None:
    message_end = refuse(deps, shop)
    started = _start(deps, "start-capture-instances")
    shop.wait_for(lambda: bool(_refused(shop)), what="the Job controller's FailedCreate")

    closed = _close(deps, reaper_deps, shop, clock)

    assert closed == {started.capture_id: "failed"}
    node = stored_session(deps, started.capture_id).nodes[NODE_A]
    assert node.status == "never_started"
    assert node.reason.endswith(message_end)


@pytest.mark.parametrize("code", [400, 403])
def test_a_webhook_denying_one_nodes_job_fails_that_node_frees_it_and_the_other_node_captures(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock, code: int
) -> None:
    def on_node_a(job: dict[str, Any]) -> bool:
        return bool(job["metadata"]["labels"].get(LABEL_NODE, "").startswith("ip-192-168-12-34"))

    shop.webhooks.deny(WEBHOOK, WEBHOOK_SAYS, "jobs", code=code, when=on_node_a)
    started = _start(deps, "start-capture-nodes")

    assert started.status == "running"
    assert started.nodes == {NODE_A: "failed", NODE_B: "pending"}
    session = stored_session(deps, started.capture_id)
    assert session.nodes[NODE_A].reason == (
        f'create jobs refused by an admission webhook (HTTP {code}): admission webhook "{WEBHOOK}" '
        f"denied the request: {WEBHOOK_SAYS}"
    )
    assert _held(deps, f"LOCK#{CLUSTER}#{NODE_A}") is None
    assert _held(deps, f"LOCK#{CLUSTER}#{NODE_B}") == started.capture_id
    assert [j["spec"]["template"]["spec"]["nodeName"] for j in shop.objects(JOBS, NAMESPACE)] == [NODE_B]
    shop.wait_for(lambda: len(shop.objects(PODS, NAMESPACE)) == 1, what="node B's capture pod")
    upload_manifest(
        deps.store, deps.settings.capture_bucket, CLUSTER, str(started.capture_id), NODE_B, packets=420
    )
    clock.moment += timedelta(seconds=3600)

    closed = _close(deps, reaper_deps, shop, clock)

    assert closed == {started.capture_id: "completed"}
    session = stored_session(deps, started.capture_id)
    assert {n.node: n.status for n in session.nodes.values()} == {
        NODE_A: "failed",
        NODE_B: "deadline_exceeded",
    }
    assert session.verdict.startswith("1 of 2 node(s) captured")
    assert f"not captured: {NODE_A} failed (create jobs refused by an admission webhook" in session.verdict


def test_a_webhook_denying_every_job_fails_the_capture_at_once_and_frees_its_slot(
    deps: Deps, shop: KubeEmulator
) -> None:
    shop.webhooks.deny(WEBHOOK, WEBHOOK_SAYS, "jobs")

    started = _start(deps, "start-capture-nodes")

    assert started.status == "failed"
    assert started.nodes == {NODE_A: "failed", NODE_B: "failed"}
    assert (
        f'{NODE_A}: create jobs refused by an admission webhook (HTTP 400): admission webhook "{WEBHOOK}"'
        in (started.message)
    )
    assert stored_session(deps, started.capture_id).status == "failed"
    slots = [f"SLOT#{CLUSTER}#{n}" for n in range(deps.settings.max_concurrent_captures)]
    assert [_held(deps, slot) for slot in slots] == [None] * len(slots)
    assert [_held(deps, f"LOCK#{CLUSTER}#{node}") for node in (NODE_A, NODE_B)] == [None, None]


def test_a_webhook_denying_the_jobs_of_the_most_nodes_in_long_words_records_each_node_within_the_item_size(
    deps: Deps, shop: KubeEmulator
) -> None:
    most = Settings.model_fields["max_nodes_per_capture"].metadata[-1].le
    fleet = [name for name, _instance in burst_nodes(shop, most, prefix=LARGEST)]
    shop.webhooks.deny(WEBHOOK, _kyverno_blocked, "jobs")
    wide = replace(deps, settings=deps.settings.model_copy(update={"max_nodes_per_capture": most}))
    event = load_event("start-capture-label-selector")
    event["detail"]["targets"]["node_selector"] = {"matchLabels": {"eks.amazonaws.com/nodegroup": LARGEST}}

    started = trigger.handle(event, wide)  # each node's whole answer (~640 bytes): a ~0.9 MB item

    assert started.status == "failed", started.message
    session = stored_session(deps, started.capture_id)
    assert session.status == "failed"
    assert {name: node.status for name, node in session.nodes.items()} == dict.fromkeys(fleet, "failed")
    said = f'create jobs refused by an admission webhook (HTTP 400): admission webhook "{WEBHOOK}" denied the'

    def whole(node: str) -> str:
        job = {"metadata": {"namespace": NAMESPACE, "name": job_name(CaptureId(session.capture_id), node)}}
        return f"{said} request: {_kyverno_blocked(job)}"

    assert {name: node.reason for name, node in session.nodes.items()} == {
        name: f"{said[:39]}…(truncated, {len(whole(name).encode())} bytes)" for name in fleet
    }  # 64 bytes: the head, and how long the whole was
    said_once = f"no node could be captured ({fleet[0]}: {whole(fleet[0])}; {fleet[1]}: "  # the whole, once
    assert session.verdict.startswith(said_once)
    assert session.verdict.endswith(" bytes)")
    assert started.message == session.verdict  # what the log line and the notification say: what is kept
    item = boto3.client("dynamodb").get_item(
        TableName=deps.settings.capture_table, Key=serialize(session_key(session.capture_id))
    )
    assert item_size(item["Item"]) <= 0.9 * DYNAMODB_ITEM_LIMIT
    assert [_held(deps, f"LOCK#{CLUSTER}#{node}") for node in fleet[:3]] == [None] * 3


def test_an_rbac_refusal_of_the_job_says_rbac_not_admission(deps: Deps, shop: KubeEmulator) -> None:
    revoke(shop, "create", "jobs")

    started = _start(deps, "start-capture-instances")

    assert started.status == "failed"
    reason = stored_session(deps, started.capture_id).nodes[NODE_A].reason
    assert reason.startswith(f"access denied on cluster {CLUSTER}: RBAC permission: ")
    assert 'is forbidden: User "' in reason
    assert 'cannot create resource "jobs" in API group "batch"' in reason


def test_a_capture_whose_pods_ran_but_left_nothing_in_s3_is_failed_not_completed(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _start(deps, "start-capture-instances")
    shop.wait_for(
        lambda: [p["status"].get("phase") for p in shop.objects(PODS, NAMESPACE)] == ["Running"],
        what="the capture pod running",
    )
    clock.moment += timedelta(seconds=3600)

    closed = _close(deps, reaper_deps, shop, clock)

    assert closed == {started.capture_id: "failed"}
    node = stored_session(deps, started.capture_id).nodes[NODE_A]
    assert node.status == "failed"
    assert node.reason.startswith("no manifest and no packet reached S3; its Job: deadline exceeded: ")


def test_a_webhook_denying_the_recorder_daemonset_is_a_structured_refusal_and_creates_nothing(
    deps: Deps, shop: KubeEmulator
) -> None:
    shop.webhooks.deny(
        "validation.gatekeeper.sh", "[psp-host-network] hostNetwork is not allowed", "daemonsets", code=403
    )

    with pytest.raises(ClusterRefused) as refused:
        trigger.handle(load_event("start-recorder"), deps)

    assert refused.value.to_dict()["refused_by"] == "an admission webhook"
    assert refused.value.message == (
        "create daemonsets refused by an admission webhook (HTTP 403): "
        'admission webhook "validation.gatekeeper.sh" denied the request: '
        "[psp-host-network] hostNetwork is not allowed"
    )
    assert shop.objects(DAEMONSETS, NAMESPACE) == []
