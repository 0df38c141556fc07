"""One set of functions serves several clusters: each keeps its own capture cap and node locks, and one
sweep reaps every cluster (a failing one does not stop the others). Two emulated EKS clusters with the
same node names, one moto account.

The template still deploys one cluster per stack and Settings names one (DEFAULT_CLUSTER): the sweep is
given both clusters here. docs/security.md, "Several clusters", says what is missing and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eks_capture import eks, reaper, trigger
from eks_capture.reaper import ReaperDeps
from eks_capture.trigger import Deps, Outcome
from localcloud.aws import REGION, MotoServer
from localcloud.cloud import create_eks_cluster
from localcloud.clusters import load_cluster_spec, populate
from localcloud.kube import KubeEmulator, start_kube_emulator
from localcloud.kube.emulator import combined_env
from localcloud.kube.resources import JOBS, PODS
from localcloud.template import Stack
from tests.events import load_event

SHOP = "shop-prod"
PAYMENTS = "payments-prod"
NAMESPACE = "eks-capture"
CLUSTERS = (SHOP, PAYMENTS)


@pytest.fixture
def payments(
    aws: MotoServer, stack: Stack, shop: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KubeEmulator]:
    """A second cluster with the sample cluster's nodes (same names), reachable beside ``shop-prod``."""
    create_eks_cluster(PAYMENTS)
    emulator = start_kube_emulator(PAYMENTS, aws.endpoint_url, REGION)
    emulator.local_env.update(aws.env())
    populate(emulator, load_cluster_spec(SHOP), namespaces=[stack.values["CaptureNamespace"]])
    for name, value in combined_env([shop, emulator]).items():
        monkeypatch.setenv(name, value)
    eks.clear_caches()
    yield emulator
    eks.clear_caches()
    emulator.stop()


@pytest.fixture
def two(deps: Deps, payments: KubeEmulator) -> Deps:
    """The trigger's collaborators, both clusters reachable, a cap of one capture per cluster."""
    return Deps(settings=deps.settings.model_copy(update={"max_concurrent_captures": 1}), store=deps.store)


def _request(cluster: str, event_id: str, name: str = "start-capture-nodes") -> dict[str, Any]:
    event = load_event(name)
    event["id"] = event_id
    event["detail"]["cluster"] = cluster
    return event


def _nodes(cluster: KubeEmulator) -> list[str]:
    return sorted(job["spec"]["template"]["spec"]["nodeName"] for job in cluster.objects(JOBS, NAMESPACE))


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


def _emptied(cluster: KubeEmulator) -> Callable[[], bool]:
    return lambda: cluster.objects(PODS, NAMESPACE) == [] and cluster.objects(JOBS, NAMESPACE) == []


def _expire(outcomes: list[Outcome], deps: Deps) -> datetime:
    latest = datetime.now(UTC)
    for outcome in outcomes:
        session = deps.store.get_session(str(outcome.capture_id))
        assert session is not None
        latest = max(latest, session.expires_at)
    return latest + timedelta(seconds=deps.settings.upload_grace_seconds + 1)


def test_one_sweep_reaps_every_cluster_and_closes_their_captures(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator
) -> None:
    started = [trigger.handle(_request(c, f"{c}-1"), two) for c in CLUSTERS]
    moment = _expire(started, two)
    sweeper = ReaperDeps(settings=two.settings, store=two.store, now=lambda: moment)

    reports = reaper.sweep(sweeper, CLUSTERS)
    for cluster in (shop, payments):
        cluster.wait_for(_emptied(cluster), timeout=30, what=f"{cluster.cluster_name} swept")
    moment += timedelta(seconds=300)
    closing = reaper.sweep(sweeper, CLUSTERS)

    assert [r.cluster for r in reports] == [SHOP, PAYMENTS]
    assert [sum(r.deleted.values()) for r in reports] == [2, 2]
    assert {c for r in reports + closing for c in r.closed} == {o.capture_id for o in started}


def test_a_cluster_whose_api_fails_does_not_stop_the_sweep_of_the_others(
    two: Deps, shop: KubeEmulator, payments: KubeEmulator
) -> None:
    started = [trigger.handle(_request(c, f"{c}-1"), two) for c in CLUSTERS]
    moment = _expire(started, two)
    shop.faults.fail("list", "jobs", status=403)

    reports = reaper.sweep(ReaperDeps(settings=two.settings, store=two.store, now=lambda: moment), CLUSTERS)

    assert reports[0].cluster == SHOP
    assert reports[0].errors
    assert (reports[1].cluster, reports[1].errors, sum(reports[1].deleted.values())) == (PAYMENTS, [], 2)
    assert len(shop.objects(JOBS, NAMESPACE)) == 2
