"""The trigger with a recorder: Start Recorder runs it on the chosen nodes, an alarm asks those nodes'
recorders for the window (a pod annotation) and starts Jobs only on the others, Stop Recorder removes it.

Everything real over HTTP: sample events, DynamoDB and CloudWatch in moto, ``shop-prod`` in the emulator.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import boto3

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.reaper import sweep
from eks_capture.captures.recorder import DOWNWARD_REFRESH_SECONDS, LOOKBACK_MARGIN_SECONDS
from eks_capture.kube.calls import Cluster
from localcloud.kube import KubeEmulator, PodBehaviour
from localcloud.kube.resources import DAEMONSETS, JOBS, PODS
from tests.events import load_event
from tests.fixtures.recorders import recorder_pods, start_recorder_on, wait_for_running_recorders
from tests.fixtures.sessions import stored_session
from tests.fixtures.waiting import eventually

NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"
NAMESPACE = "eks-capture"
ALARM = "eks-capture-pps-allowance-any-node"


def put_alarm(period: int, evaluation_periods: int) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        Namespace="AWS/EC2",
        MetricName="pps_allowance_exceeded",
        Statistic="Maximum",
        Period=period,
        EvaluationPeriods=evaluation_periods,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_an_alarm_asks_the_recorder_for_its_window_and_starts_a_job_only_where_none_records(
    deps: Deps, shop: KubeEmulator
) -> None:
    outcome = trigger.handle(start_recorder_on([NODE_A]), deps)
    assert outcome.status == "recording", outcome.message
    [recorder] = wait_for_running_recorders(shop, 1)
    assert recorder["spec"]["nodeName"] == NODE_A
    put_alarm(period=60, evaluation_periods=3)
    alarm = load_event("alarm-metric-math")

    outcome = trigger.handle(alarm, deps)

    assert outcome.status == "running", outcome.message
    assert outcome.nodes == {NODE_A: "running", NODE_B: "pending"}
    jobs = shop.objects(JOBS, NAMESPACE)
    assert [job["spec"]["template"]["spec"]["nodeName"] for job in jobs] == [NODE_B]
    annotated = shop.get(PODS, NAMESPACE, recorder["metadata"]["name"])
    assert annotated is not None
    request = json.loads(annotated["metadata"]["annotations"]["eks-capture.io/window-request"])
    assert request["capture_id"] == outcome.capture_id
    assert request["prefix"] == f"captures/shop-prod/{outcome.capture_id}/{NODE_A}/"
    trigger_at = datetime.fromisoformat(alarm["detail"]["state"]["timestamp"])
    lookback = 60 * 3 + LOOKBACK_MARGIN_SECONDS
    assert datetime.fromisoformat(request["trigger_at"]) == trigger_at
    assert datetime.fromisoformat(request["from"]) == trigger_at - timedelta(seconds=lookback)
    session = stored_session(deps, outcome.capture_id)
    duration = session.duration_seconds
    assert datetime.fromisoformat(request["to"]) == trigger_at + timedelta(seconds=duration)
    assert session.nodes[NODE_A].job is None
    assert f"reaches {lookback} s before the trigger" in session.nodes[NODE_A].reason
    assert session.nodes[NODE_B].job
    assert session.verdict.startswith("capturing on 2 node(s), 1 of them from their recorder's ring")


def test_a_lookback_longer_than_the_ring_is_capped_and_the_verdict_says_so(
    deps: Deps, shop: KubeEmulator
) -> None:
    trigger.handle(start_recorder_on([NODE_A], ring_minutes=4), deps)
    wait_for_running_recorders(shop, 1)
    event = copy.deepcopy(load_event("start-capture-nodes"))
    event["detail"]["lookback_seconds"] = 360

    outcome = trigger.handle(event, deps)

    session = stored_session(deps, outcome.capture_id)
    held = 4 * 60 - DOWNWARD_REFRESH_SECONDS
    assert session.nodes[NODE_A].reason.endswith(
        f"the ring holds only {held / 60:g} minutes of the 6 minutes asked"
    )


def test_an_unhealthy_recorder_is_reported_and_its_node_gets_a_job(
    deps: Deps, shop: KubeEmulator, teardown_cluster: Callable[[str], Cluster]
) -> None:
    shop.script_pods(PodBehaviour(image_pull_error=True), node=NODE_B, namespace=NAMESPACE)
    trigger.handle(start_recorder_on([NODE_A, NODE_B]), deps)
    wait_for_running_recorders(shop, 1)

    outcome = trigger.handle(load_event("start-capture-nodes"), deps)
    [report] = sweep(Deps(settings=deps.settings, store=deps.store, cluster=teardown_cluster), ["shop-prod"])

    assert outcome.nodes == {NODE_A: "running", NODE_B: "pending"}
    [(pod, why)] = report.unhealthy_recorders.items()
    assert pod.startswith("eks-capture-recorder")
    assert "ImagePullBackOff" in why or "Pending" in why


def test_stop_recorder_removes_it_and_captures_go_back_to_jobs(deps: Deps, shop: KubeEmulator) -> None:
    trigger.handle(start_recorder_on([NODE_A]), deps)
    wait_for_running_recorders(shop, 1)

    stopped = trigger.handle(load_event("stop-recorder"), deps)
    again = trigger.handle(load_event("stop-recorder"), deps)

    assert stopped.status == again.status == "stopped"
    assert "was not running" in again.message
    assert shop.objects(DAEMONSETS, NAMESPACE) == []
    eventually(
        lambda: not recorder_pods(shop),
        timeout=30,
        what=lambda: f"recorder pods left: {[p['metadata']['name'] for p in recorder_pods(shop)]}",
    )
    outcome = trigger.handle(load_event("start-capture-nodes"), deps)
    assert outcome.nodes == {NODE_A: "pending", NODE_B: "pending"}


def test_start_recorder_again_updates_the_daemonset_in_place(deps: Deps, shop: KubeEmulator) -> None:
    first = trigger.handle(start_recorder_on([NODE_A]), deps)
    second = trigger.handle(start_recorder_on([NODE_A, NODE_B], ring_minutes=20), deps)

    assert "created" in first.message
    assert "updated" in second.message
    [daemonset] = shop.objects(DAEMONSETS, NAMESPACE)
    template = daemonset["spec"]["template"]
    assert template["metadata"]["annotations"]["eks-capture.io/ring-seconds"] == "1200"


def test_the_sweep_closes_a_recorder_node_with_how_far_back_its_window_reaches(
    deps: Deps, shop: KubeEmulator, teardown_cluster: Callable[[str], Cluster]
) -> None:
    trigger.handle(start_recorder_on([NODE_A]), deps)
    wait_for_running_recorders(shop, 1)
    outcome = trigger.handle(load_event("start-capture-instances"), deps)
    session = stored_session(deps, outcome.capture_id)
    assert outcome.nodes == {NODE_A: "running"}
    reach = "the ring held only 40 s of the 300 s asked before the trigger"
    totals = {"files": 7, "packets": 2100, "pre_trigger_files": 4}
    manifest = {"status": "complete", "incomplete_reasons": [], "totals": totals, "window": {"reach": reach}}
    early = Deps(
        settings=deps.settings,
        store=deps.store,
        now=lambda: session.expires_at - timedelta(1 / 24),
        cluster=teardown_cluster,
    )
    late = Deps(
        settings=deps.settings,
        store=deps.store,
        now=lambda: session.expires_at + timedelta(seconds=1),
        cluster=teardown_cluster,
    )

    [uploading] = sweep(late, ["shop-prod"])  # past its expiry, within the upload grace: no manifest yet
    boto3.client("s3").put_object(
        Bucket=deps.settings.capture_bucket,
        Key=f"{session.s3_prefix}{NODE_A}/manifest.json",
        Body=json.dumps(manifest).encode(),
    )
    [while_open] = sweep(early, ["shop-prod"])
    [after] = sweep(late, ["shop-prod"])

    assert uploading.closed == {}, "the recorder writes the window's manifest last, once its files are up"
    assert while_open.closed == {}, "the window may still be uploading"
    assert after.closed == {outcome.capture_id: "completed"}
    closed = stored_session(deps, outcome.capture_id)
    assert closed.nodes[NODE_A].status == "completed"
    assert closed.nodes[NODE_A].reason == f"7 file(s) from the recorder's ring, 4 before the trigger; {reach}"
    again = load_event("start-capture-instances")
    again["id"] = "a-second-window-whose-manifest-never-comes"
    second = stored_session(deps, trigger.handle(again, deps).capture_id)
    graced = second.expires_at + timedelta(seconds=deps.settings.upload_grace_seconds)
    [gone] = sweep(
        Deps(settings=deps.settings, store=deps.store, now=lambda: graced, cluster=teardown_cluster),
        ["shop-prod"],
    )
    assert gone.closed == {second.capture_id: "failed"}, "past the upload grace, no manifest will come"
    assert stored_session(deps, second.capture_id).nodes[NODE_A].reason == (
        "the recorder wrote no manifest for its window (was its pod gone?)"
    )


def test_an_alarm_that_lists_every_pod_finds_the_recorders_in_that_list(
    deps: Deps, shop: KubeEmulator
) -> None:
    trigger.handle(start_recorder_on([NODE_A]), deps)
    wait_for_running_recorders(shop, 1)
    pod_lists = shop.calls[("list", "pods")]

    outcome = trigger.handle(load_event("alarm-container-insights-pod"), deps)

    assert outcome.nodes == {NODE_A: "running", NODE_B: "pending"}
    assert shop.calls[("list", "pods")] == pod_lists + 1, (
        "one cluster-wide pod list serves targets and recorders"
    )
