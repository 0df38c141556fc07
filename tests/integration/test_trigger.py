"""The trigger starts exactly one capture Job per affected node, and records why for every node it skips.

Everything real over HTTP: the sample events of events/, DynamoDB and CloudWatch in moto, and the
sample cluster ``shop-prod`` (events/clusters/shop-prod.json) in the Kubernetes emulator.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

import boto3
import pytest

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.errors import CaptureNotFound, CaptureRejected, ClusterAccessDenied
from eks_capture.kube.calls import Cluster
from eks_capture.kube.labels import LABEL_CAPTURE_ID
from eks_capture.settings import NodeFallback
from localcloud.access import kubectl_as
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.template import Stack
from tests.events import event_names, load_event
from tests.fixtures.cluster import revoke
from tests.fixtures.recorders import recorder_pods
from tests.fixtures.sessions import stored_session

NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"  # i-0a1b2c3d4e5f60718, nodegroup general
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"  # i-0fedcba9876543210, nodegroup general
NODE_GPU = "ip-192-168-77-9.us-west-2.compute.internal"  # tainted nvidia.com/gpu
NAMESPACE = "eks-capture"
CLUSTER = "shop-prod"


def _jobs(shop: KubeEmulator) -> list[dict[str, Any]]:
    return shop.objects(JOBS, NAMESPACE)


def _job_nodes(shop: KubeEmulator) -> list[str]:
    return sorted(job["spec"]["template"]["spec"]["nodeName"] for job in _jobs(shop))


def _with(deps: Deps, **changes: Any) -> Deps:
    return replace(deps, settings=deps.settings.model_copy(update=changes))


@pytest.mark.parametrize(
    ("event", "nodes"),
    [
        pytest.param("alarm-single-metric-instance", [NODE_A], id="instance-id-dimension"),
        pytest.param("alarm-container-insights-node", [NODE_A], id="container-insights-node-name"),
        pytest.param("alarm-container-insights-pod", [NODE_A, NODE_B], id="container-insights-pod-workload"),
        pytest.param("alarm-metric-math", [NODE_A, NODE_B], id="metric-math-across-metrics"),
        pytest.param("start-capture-nodes", [NODE_A, NODE_B], id="manual-node-names"),
        pytest.param("start-capture-instances", [NODE_A], id="manual-instance-ids"),
        pytest.param("start-capture-label-selector", [NODE_A, NODE_B], id="manual-node-label-selector"),
        pytest.param("start-capture-pod-selector", [NODE_A, NODE_B], id="manual-pod-selector"),
        pytest.param("start-capture-all", [NODE_A, NODE_B, NODE_GPU], id="manual-all-nodes"),
    ],
)
def test_each_target_kind_starts_one_job_per_affected_node(
    deps: Deps, shop: KubeEmulator, event: str, nodes: list[str]
) -> None:
    outcome = trigger.handle(load_event(event), deps)

    assert outcome.status == "running", outcome.message
    assert _job_nodes(shop) == nodes
    session = stored_session(deps, outcome.capture_id)
    assert sorted(session.nodes) == nodes
    assert all(node.job and node.status == "pending" and node.matched_by for node in session.nodes.values())
    assert {job["metadata"]["labels"][LABEL_CAPTURE_ID] for job in _jobs(shop)} == {outcome.capture_id}


def test_alarm_tags_set_the_capture_duration_and_filter(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(load_event("alarm-single-metric-instance"), deps)

    session = stored_session(deps, outcome.capture_id)
    assert (session.duration_seconds, session.filter) == (
        600,
        "tcp[tcpflags] & (tcp-syn|tcp-rst|tcp-fin) != 0",
    )
    [job] = _jobs(shop)
    capture_args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "tcp[tcpflags] & (tcp-syn|tcp-rst|tcp-fin) != 0" in capture_args
    assert job["spec"]["activeDeadlineSeconds"] == 600 + deps.settings.upload_grace_seconds


def test_alarm_tags_are_read_from_cloudwatch_when_the_event_carries_none(
    deps: Deps, shop: KubeEmulator
) -> None:
    event = load_event("alarm-container-insights-node")
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=event["detail"]["alarmName"],
        Namespace="ContainerInsights",
        MetricName="node_interface_network_rx_dropped",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": "eks-capture:duration", "Value": "90"}, {"Key": "eks-capture:snaplen", "Value": "128"}],
    )
    event["resources"] = [
        cloudwatch.describe_alarms(AlarmNames=[event["detail"]["alarmName"]])["MetricAlarms"][0]["AlarmArn"]
    ]

    session = stored_session(deps, trigger.handle(event, deps).capture_id)

    assert (session.duration_seconds, session.snaplen) == (90, 128)


def test_alarm_leaving_alarm_state_starts_nothing(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(load_event("alarm-ok"), deps)

    assert outcome.status == "ignored"
    assert _jobs(shop) == []
    assert deps.store.sessions("shop-prod") == []


def test_alarm_outside_the_stack_prefix_starts_nothing(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(
        load_event("alarm-single-metric-instance"), _with(deps, alarm_name_prefix="team-")
    )

    assert outcome.status == "ignored"
    assert _jobs(shop) == []


def test_composite_alarm_captures_nothing_when_the_fallback_is_none(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(load_event("alarm-composite"), deps)

    assert outcome.status == "failed"
    assert "names no node" in outcome.message
    assert _jobs(shop) == []
    assert stored_session(deps, outcome.capture_id).status == "failed"


def test_composite_alarm_captures_every_node_up_to_the_cap_when_the_fallback_is_all(
    deps: Deps, shop: KubeEmulator
) -> None:
    outcome = trigger.handle(
        load_event("alarm-composite"), _with(deps, node_fallback=NodeFallback.ALL, max_nodes_per_capture=2)
    )

    assert len(_jobs(shop)) == 2
    assert list(outcome.skipped.values()) == ["over the cap of 2 nodes per capture"]


def test_the_same_event_delivered_twice_starts_one_capture(deps: Deps, shop: KubeEmulator) -> None:
    event = load_event("start-capture-nodes")
    first = trigger.handle(event, deps)
    second = trigger.handle(event, deps)

    assert (first.status, second.status) == ("running", "duplicate")
    assert first.capture_id == second.capture_id
    assert len(_jobs(shop)) == 2
    assert len(deps.store.sessions("shop-prod")) == 1


def test_a_flapping_alarm_is_refused_during_its_cooldown_and_the_refusal_recorded(
    deps: Deps, shop: KubeEmulator
) -> None:
    first = load_event("alarm-single-metric-instance")
    again = load_event("alarm-single-metric-instance")
    again["id"] = "a-new-delivery-after-the-alarm-flapped"

    trigger.handle(first, deps)
    refused = trigger.handle(again, deps)

    assert refused.status == "rejected"
    assert "cooling down" in refused.message
    assert stored_session(deps, refused.capture_id).status == "rejected"
    assert len(_jobs(shop)) == 1


def test_a_node_already_being_captured_is_skipped_by_another_alarm(deps: Deps, shop: KubeEmulator) -> None:
    first = trigger.handle(load_event("alarm-single-metric-instance"), deps)
    second = trigger.handle(load_event("alarm-metric-math"), deps)

    assert second.status == "running"
    assert second.skipped == {NODE_A: f"already being captured by {first.capture_id}"}
    assert sorted(second.nodes) == [NODE_B]
    assert _job_nodes(shop) == [NODE_A, NODE_B]


def test_concurrent_capture_cap_refuses_a_new_capture(deps: Deps, shop: KubeEmulator) -> None:
    capped = _with(deps, max_concurrent_captures=1)
    trigger.handle(load_event("start-capture-instances"), capped)

    refused = trigger.handle(load_event("alarm-metric-math"), capped)

    assert refused.status == "rejected"
    assert "cap is 1" in refused.message
    assert len(_jobs(shop)) == 1


def test_node_cap_captures_the_first_nodes_and_names_the_rest(deps: Deps, shop: KubeEmulator) -> None:
    outcome = trigger.handle(load_event("start-capture-all"), _with(deps, max_nodes_per_capture=1))

    assert len(outcome.nodes) == 1
    assert sorted(outcome.skipped.values()) == ["over the cap of 1 nodes per capture"] * 2


def test_vanished_and_not_ready_nodes_are_skipped_with_the_reason(deps: Deps, shop: KubeEmulator) -> None:
    shop.remove_node(NODE_A)
    shop.set_node_ready(NODE_B, False)

    outcome = trigger.handle(load_event("start-capture-nodes"), deps)

    assert outcome.status == "failed"
    assert outcome.skipped == {NODE_A: "gone: not in the cluster", NODE_B: "NotReady"}
    assert _jobs(shop) == []


def test_denied_node_listing_fails_with_the_missing_permission_named(deps: Deps, shop: KubeEmulator) -> None:
    revoke(shop, "list", "nodes")

    with pytest.raises(ClusterAccessDenied, match=r"cannot list resource \"nodes\""):
        trigger.handle(load_event("start-capture-nodes"), deps)
    assert _jobs(shop) == []


@pytest.mark.parametrize("event", ["start-capture-instances", "alarm-single-metric-instance"])
def test_a_trigger_role_without_its_access_entry_fails_naming_it_and_holds_nothing(
    deps: Deps, shop: KubeEmulator, stack: Stack, event: str
) -> None:
    role = stack.arn("TriggerRole")
    boto3.client("eks").delete_access_entry(clusterName=CLUSTER, principalArn=role)

    with pytest.raises(ClusterAccessDenied) as denied:
        trigger.handle(load_event(event), deps)

    assert denied.value.message == (
        f"access denied on cluster {CLUSTER}: the cluster did not authenticate IAM principal {role} "
        "(401 Unauthorized): no EKS access entry accepts it, or its token was refused (expired, or a skewed "
        f"clock); to give it one: aws eks create-access-entry --cluster-name {CLUSTER} --principal-arn "
        f"{role}, or map it in aws-auth"
    )
    assert _jobs(shop) == []
    # no session, node lock, capture slot or alarm cooldown: the table holds nothing
    assert boto3.client("dynamodb").scan(TableName=deps.settings.capture_table)["Items"] == []


def test_denied_job_creation_marks_each_node_failed_and_frees_it(deps: Deps, shop: KubeEmulator) -> None:
    revoke(shop, "create", "jobs")

    outcome = trigger.handle(load_event("start-capture-instances"), deps)

    assert outcome.status == "failed"
    session = stored_session(deps, outcome.capture_id)
    assert session.nodes[NODE_A].status == "failed"
    assert 'cannot create resource "jobs"' in session.nodes[NODE_A].reason
    kubectl_as(shop).apply()  # the operator applies deploy/kubernetes/ again
    retry = load_event("start-capture-instances")
    retry["id"] = "operator-retries"
    assert trigger.handle(retry, deps).status == "running"


def test_throttled_api_is_retried_until_it_answers(deps: Deps, shop: KubeEmulator) -> None:
    shop.faults.fail("create", "jobs", status=429, times=2, retry_after=0)

    outcome = trigger.handle(load_event("start-capture-instances"), deps)

    assert outcome.status == "running"
    assert len(_jobs(shop)) == 1


@pytest.mark.parametrize("name", event_names(folder="invalid"))
def test_invalid_events_are_rejected_naming_the_field_and_create_nothing(
    deps: Deps, shop: KubeEmulator, name: str
) -> None:
    with pytest.raises(CaptureRejected) as rejected:
        trigger.handle(load_event(name), deps)

    assert rejected.value.field
    assert _jobs(shop) == []
    assert deps.store.sessions("shop-prod") == []


def test_stop_capture_deletes_the_jobs_and_marks_the_session_stopping(deps: Deps, shop: KubeEmulator) -> None:
    started = trigger.handle(load_event("start-capture-nodes"), deps)
    stop = load_event("stop-capture")
    stop["detail"]["capture_id"] = started.capture_id
    jobs = sorted(j["metadata"]["name"] for j in _jobs(shop))

    outcome = trigger.handle(stop, deps)

    assert outcome.status == "stopping"
    assert sorted(outcome.nodes) == jobs
    shop.wait_for(lambda: _jobs(shop) == [], timeout=15, what="jobs deleted")
    session = stored_session(deps, started.capture_id)
    assert session.status == "stopping"
    assert "got what we needed" in session.verdict


def test_stopping_an_unknown_capture_says_so(deps: Deps, shop: KubeEmulator) -> None:
    with pytest.raises(CaptureNotFound):
        trigger.handle(load_event("stop-capture"), deps)


@pytest.mark.parametrize("event", ["alarm-single-metric-instance", "start-capture-all", "start-recorder"])
def test_before_the_first_image_is_deployed_every_start_is_refused_naming_the_parameter(
    deps: Deps, shop: KubeEmulator, event: str
) -> None:
    with pytest.raises(CaptureRejected) as rejected:
        trigger.handle(load_event(event), _with(deps, capture_image=None))

    assert rejected.value.field == "CaptureImageUri"
    assert "scripts/build-image.sh" in str(rejected.value)
    assert _jobs(shop) == []
    assert deps.store.sessions("shop-prod") == []


def test_before_the_first_image_is_deployed_a_stop_is_still_handled(deps: Deps, shop: KubeEmulator) -> None:
    with pytest.raises(CaptureNotFound):
        trigger.handle(load_event("stop-capture"), _with(deps, capture_image=None))


def test_fargate_and_windows_nodes_get_no_capture_pod_and_the_recorder_keeps_off_them(
    deps: Deps, shop: KubeEmulator
) -> None:
    fargate = shop.add_node(
        "fargate-ip-192-168-5-6.us-west-2.compute.internal",
        labels={"eks.amazonaws.com/compute-type": "fargate"},
        taints=[{"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}],
    )["metadata"]["name"]
    windows = shop.add_node(labels={"kubernetes.io/os": "windows"}, nodegroup="windows")["metadata"]["name"]

    outcome = trigger.handle(load_event("start-capture-all"), deps)

    assert _job_nodes(shop) == sorted([NODE_A, NODE_B, NODE_GPU])
    assert outcome.skipped == {
        fargate: "Fargate (eks.amazonaws.com/compute-type=fargate): no hostNetwork pods, so no capture",
        windows: "not Linux (kubernetes.io/os=windows): the capture agent is a Linux image",
    }
    recorder = load_event("start-recorder")
    recorder["detail"]["node_selector"] = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "Exists"}]
    }
    assert trigger.handle(recorder, deps).status == "recording"
    shop.settle()
    placed = {pod["spec"].get("nodeName") for pod in recorder_pods(shop)}
    assert placed == {NODE_A, NODE_B, NODE_GPU}, "one recorder per Linux EC2 node, none on Fargate or Windows"


def test_a_stalled_api_call_times_out_and_is_retried_like_a_dropped_one(
    deps: Deps, shop: KubeEmulator
) -> None:
    # A read timeout short for a test, yet one every answered call meets on a loaded machine (0.5 s did not:
    # create jobs timed out at load 15), and a stall well past it.
    read_timeout, stall_seconds = 2.0, 10.0
    quick = Deps(
        settings=deps.settings,
        store=deps.store,
        cluster=lambda name: Cluster(name, timeout=(1.0, read_timeout)),
    )
    stalled = shop.faults.stall("list", "nodes", seconds=stall_seconds, times=2)

    started = time.monotonic()
    outcome = trigger.handle(load_event("start-capture-nodes"), quick)

    assert outcome.status == "running", outcome.message
    assert _job_nodes(shop) == sorted([NODE_A, NODE_B])
    assert stalled.fired == 2
    assert time.monotonic() - started >= 2 * read_timeout, "each stalled attempt waited out the read timeout"
    # Each retry reached the server before the stall would have ended, however long the rest took.
    lists = [moment for moment in shop.calls.arrivals("list", "nodes") if moment >= started][:3]
    waits = [later - earlier for earlier, later in itertools.pairwise(lists)]
    assert len(waits) == 2
    assert max(waits) < stall_seconds, f"each stalled attempt ended at the read timeout: {waits}"
