"""One stack serves several clusters: template.yaml deployed with ClusterNames=shop-prod,payments-prod
(its Fn::ForEach expanded by the local cloud) in front of two emulated EKS clusters with the same node
names. Alarms and requests on either cluster start captures through the stack's real wiring, a third
cluster is refused, each cluster keeps its own capture cap and node locks, and one sweep reaps both (a
failing one does not stop the other).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from eks_capture.captures import reaper, trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Outcome
from eks_capture.errors import CaptureRejected
from eks_capture.kube.calls import PAGE_SIZE, Cluster
from eks_capture.settings import Settings
from localcloud.aws import MotoServer
from localcloud.kube import KubeEmulator
from localcloud.kube.emulator import combined_env
from localcloud.kube.resources import JOBS, PODS
from localcloud.router import Router
from localcloud.template import Stack
from tests.events import load_event
from tests.fixtures.cluster import start_cluster
from tests.fixtures.kube import serving
from tests.fixtures.sessions import stored_session
from tests.fixtures.stack import LOCAL_LAMBDA_ENV, STACK_PARAMETERS, deploy_stack

SHOP = "shop-prod"
PAYMENTS = "payments-prod"
STAGING = "staging"  # a real cluster name, but not one of the stack's
NAMESPACE = "eks-capture"
CLUSTERS = (SHOP, PAYMENTS)


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack deployed for both clusters (replaces the one-cluster ``stack`` fixture in this module)."""
    return deploy_stack({**STACK_PARAMETERS, "ClusterNames": ",".join(CLUSTERS)}, monkeypatch)


@pytest.fixture
def payments(
    aws: MotoServer, stack: Stack, shop: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KubeEmulator]:
    """A second cluster with the sample cluster's nodes (same names), reachable beside ``shop-prod``."""
    emulator = start_cluster(aws, stack, PAYMENTS, spec=SHOP)
    yield from serving(emulator, monkeypatch, combined_env([shop, emulator]))


@pytest.fixture
def routed(stack: Stack, aws: MotoServer, payments: KubeEmulator) -> Iterator[Router]:
    """The stack's wiring live, built once both clusters are reachable (the functions inherit that)."""
    live = Router(stack, environment={**os.environ, **aws.env(), **LOCAL_LAMBDA_ENV})
    live.deploy(create_resources=False)
    yield live
    live.stop()


@pytest.fixture
def two(deps: Deps, payments: KubeEmulator) -> Deps:
    """The trigger's collaborators, both clusters reachable, a cap of one capture per cluster."""
    return replace(deps, settings=deps.settings.model_copy(update={"max_concurrent_captures": 1}))


def _request(cluster: str, event_id: str, name: str = "start-capture-nodes") -> dict[str, Any]:
    event = load_event(name)
    event["id"] = event_id
    event["detail"]["cluster"] = cluster
    return event


def _alarm(cluster: str, event_id: str) -> dict[str, Any]:
    """The Container Insights node alarm of the samples, its metric naming ``cluster``."""
    event = load_event("alarm-container-insights-node")
    event["id"] = event_id
    for metric in event["detail"]["configuration"]["metrics"]:
        metric["metricStat"]["metric"]["dimensions"]["ClusterName"] = cluster
    return event


def _object_created(bucket: str, cluster: str) -> dict[str, Any]:
    event = load_event("s3-object-created-eventbridge")
    event["detail"]["bucket"]["name"] = bucket
    key = event["detail"]["object"]["key"]
    event["detail"]["object"]["key"] = f"captures/{cluster}/" + key.split("/", 2)[2]
    return event


def _put(event: dict[str, Any], bus: str = "default") -> None:
    entry = {
        "EventBusName": bus,
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event.get("resources", []),
    }
    events: Any = boto3.client("events")
    response = events.put_events(Entries=[entry])
    assert response["FailedEntryCount"] == 0, response


def _nodes(cluster: KubeEmulator) -> list[str]:
    return sorted(job["spec"]["template"]["spec"]["nodeName"] for job in cluster.objects(JOBS, NAMESPACE))


def _sessions_in(settings: Settings, cluster: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=settings.capture_table)["Items"]
    return [i for i in items if i.get("cluster", {}).get("S") == cluster]


def test_the_functions_are_told_every_cluster_and_the_first_as_default(settings: Settings) -> None:
    assert settings.clusters == CLUSTERS
    assert settings.default_cluster == SHOP


def test_alarms_and_requests_on_either_cluster_start_captures_through_the_stacks_wiring(
    stack: Stack, deps: Deps, shop: KubeEmulator, payments: KubeEmulator, routed: Router
) -> None:
    alarm = _alarm(PAYMENTS, "alarm-payments")
    request = _request(SHOP, "request-shop")
    _put(alarm)
    _put(request, stack.name_of("CaptureEventBus"))
    triggered = [i for i in routed.drain() if i.function == "TriggerFunction"]
    sessions = [deps.store.get_session(i.result["capture_id"]) for i in triggered]

    assert {(i.event["detail-type"], i.result["status"]) for i in triggered} == {
        ("CloudWatch Alarm State Change", "running"),
        ("Start Capture", "running"),
    }
    assert sorted(s.cluster for s in sessions if s is not None) == sorted(CLUSTERS)
    assert _nodes(shop) == sorted(request["detail"]["targets"]["nodes"])
    assert _nodes(payments) == [
        m["metricStat"]["metric"]["dimensions"]["NodeName"]
        for m in alarm["detail"]["configuration"]["metrics"]
    ]


def test_a_request_or_alarm_for_another_cluster_is_refused_and_creates_nothing(
    stack: Stack, settings: Settings, shop: KubeEmulator, payments: KubeEmulator, routed: Router
) -> None:
    _put(_alarm(STAGING, "alarm-staging"))
    _put(_request(STAGING, "request-staging"), stack.name_of("CaptureEventBus"))
    results = [i.result for i in routed.drain() if i.function == "TriggerFunction"]

    assert sorted(r["error"]["field"] for r in results) == ["detail.cluster", "detail.configuration.metrics"]
    assert {r["status"] for r in results} == {"error"}
    assert all(STAGING in r["error"]["message"] for r in results)
    assert shop.objects(JOBS, NAMESPACE) == payments.objects(JOBS, NAMESPACE) == []
    assert _sessions_in(settings, STAGING) == []


def test_the_indexer_hears_each_listed_clusters_captures_and_no_others(
    settings: Settings, routed: Router
) -> None:
    for cluster in (*CLUSTERS, STAGING):
        _put(_object_created(settings.capture_bucket, cluster))
    heard = {
        i.event["detail"]["object"]["key"].split("/")[1]
        for i in routed.drain()
        if i.function == "IndexerFunction"
    }

    assert heard == set(CLUSTERS)


def test_one_scheduled_sweep_covers_every_cluster(
    shop: KubeEmulator, payments: KubeEmulator, routed: Router
) -> None:
    routed.fire_schedule("TeardownFunction")
    (sweep,) = [i for i in routed.drain() if i.function == "TeardownFunction"]

    assert sweep.error is None
    assert [(s["cluster"], s["errors"]) for s in sweep.result["sweeps"]] == [(SHOP, []), (PAYMENTS, [])]


def test_each_cluster_has_its_own_capture_cap(two: Deps, shop: KubeEmulator, payments: KubeEmulator) -> None:
    first_shop = trigger.handle(_request(SHOP, "shop-1"), two)
    first_payments = trigger.handle(_request(PAYMENTS, "payments-1"), two)
    second_shop = trigger.handle(_request(SHOP, "shop-2", "start-capture-all"), two)

    assert (first_shop.status, first_payments.status) == ("running", "running")
    assert second_shop.status == "rejected"
    assert "cap is 1" in second_shop.message
    assert (
        len({j["metadata"]["labels"]["eks-capture.io/capture-id"] for j in shop.objects(JOBS, NAMESPACE)})
        == 1
    )


def test_the_same_node_names_in_two_clusters_are_locked_separately(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator
) -> None:
    in_shop = trigger.handle(_request(SHOP, "shop-1"), two)
    in_payments = trigger.handle(_request(PAYMENTS, "payments-1"), two)

    assert in_payments.skipped == {}
    assert sorted(in_shop.nodes) == sorted(in_payments.nodes) == _nodes(shop) == _nodes(payments)
    assert len(_nodes(shop)) == 2


@pytest.mark.parametrize("name", ["start-capture-nodes", "start-recorder", "stop-recorder"])
def test_every_request_naming_a_cluster_is_checked_against_the_stacks_list(
    two: Deps, shop: KubeEmulator, name: str
) -> None:
    with pytest.raises(CaptureRejected) as refused:
        trigger.handle(_request(STAGING, "staging-1", name), two)

    assert refused.value.field == "detail.cluster"
    assert shop.objects(JOBS, NAMESPACE) == []


def _emptied(cluster: KubeEmulator) -> Callable[[], bool]:
    return lambda: cluster.objects(PODS, NAMESPACE) == [] and cluster.objects(JOBS, NAMESPACE) == []


def _expire(outcomes: list[Outcome], deps: Deps) -> datetime:
    latest = datetime.now(UTC)
    for outcome in outcomes:
        session = stored_session(deps, outcome.capture_id)
        latest = max(latest, session.expires_at)
    return latest + timedelta(seconds=deps.settings.upload_grace_seconds + 1)


def test_one_sweep_reaps_every_cluster_and_closes_their_captures(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator, teardown_cluster: Callable[[str], Cluster]
) -> None:
    started = [trigger.handle(_request(c, f"{c}-1"), two) for c in CLUSTERS]
    moment = _expire(started, two)
    sweeper = Deps(settings=two.settings, store=two.store, now=lambda: moment, cluster=teardown_cluster)

    reports = reaper.sweep(sweeper, two.settings.clusters)
    for cluster in (shop, payments):
        cluster.wait_for(_emptied(cluster), timeout=30, what=f"{cluster.cluster_name} swept")
    moment += timedelta(seconds=300)
    closing = reaper.sweep(sweeper, two.settings.clusters)

    assert [r.cluster for r in reports] == [SHOP, PAYMENTS]
    assert [sum(r.deleted.values()) for r in reports] == [2, 2]
    assert {c for r in reports + closing for c in r.closed} == {o.capture_id for o in started}


def test_a_cluster_whose_api_fails_does_not_stop_the_sweep_of_the_others(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator, teardown_cluster: Callable[[str], Cluster]
) -> None:
    started = [trigger.handle(_request(c, f"{c}-1"), two) for c in CLUSTERS]
    moment = _expire(started, two)
    shop.faults.fail("list", "jobs", status=403)

    sweeper = Deps(settings=two.settings, store=two.store, now=lambda: moment, cluster=teardown_cluster)
    reports = reaper.sweep(sweeper, two.settings.clusters)

    assert reports[0].cluster == SHOP
    assert reports[0].errors
    assert (reports[1].cluster, reports[1].errors, sum(reports[1].deleted.values())) == (PAYMENTS, [], 2)
    assert len(shop.objects(JOBS, NAMESPACE)) == 2


def test_a_list_continuation_that_expires_mid_sweep_is_listed_again_and_every_cluster_is_swept(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator
) -> None:
    started = [trigger.handle(_request(c, f"{c}-1"), two) for c in CLUSTERS]
    labels = {"app.kubernetes.io/name": "eks-capture", "app.kubernetes.io/component": "capture"}
    for index in range(PAGE_SIZE):  # the capture pods' list takes two pages
        container = {"name": "capture", "image": "capture:1"}
        spec = {
            "containers": [container],
            "nodeSelector": {"eks-capture.io/test": "nowhere"},
        }  # stays Pending
        pod = {"metadata": {"name": f"leftover-{index}", "labels": labels}, "spec": spec}
        shop.registry.create(PODS, NAMESPACE, pod)
    shop.faults.compact_before_continue("pods")  # etcd compacts between the two pages: 410 Expired
    shop.calls.reset()
    moment = _expire(started, two)
    sweeper = Deps(settings=two.settings, store=two.store, now=lambda: moment)

    reports = reaper.sweep(sweeper, two.settings.clusters)

    assert [(r.cluster, r.errors, sum(r.deleted.values())) for r in reports] == [
        (SHOP, [], 2),
        (PAYMENTS, [], 2),
    ]
    assert shop.calls[("list", "pods")] == 4, "two pages, the second expired, then two pages again"
