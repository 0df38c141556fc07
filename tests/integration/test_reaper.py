"""Nothing outlives its time box, and every capture ends with a verdict per node.

The trigger starts real Jobs in the emulated ``shop-prod``; the kubelet plays each scripted pod's life;
the reaper sweeps with its clock moved forward where the case needs time to pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest

from eks_capture.captures import reaper, trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.options import CaptureOptions
from eks_capture.captures.plan import Outcome
from eks_capture.kube.calls import PAGE_SIZE, Cluster
from eks_capture.kube.manifests.job import TERMINATION_MARGIN_SECONDS, CaptureSpec, capture_job
from eks_capture.kube.nodes import NodeInfo
from localcloud.access import function_session, kubectl_as
from localcloud.kube import KubeEmulator, PodBehaviour
from localcloud.kube.resources import JOBS, NODES, PODS
from localcloud.outages import DynamoDBProxy
from localcloud.router import Router
from localcloud.template import Stack
from tests.events import load_event
from tests.fixtures.clock import Clock
from tests.fixtures.sessions import stored_session
from tests.fixtures.uploads import index_file, upload_manifest, write_again

NAMESPACE = "eks-capture"
NODE_A = "ip-192-168-12-34.us-west-2.compute.internal"
NODE_B = "ip-192-168-40-7.us-west-2.compute.internal"


def _start(deps: Deps, name: str = "start-capture-nodes") -> Outcome:
    outcome = trigger.handle(load_event(name), deps)
    assert outcome.status == "running", outcome.message
    return outcome


def _finished(deps: Deps, shop: KubeEmulator, name: str = "start-capture-nodes") -> Outcome:
    """A capture whose Jobs ran briefly and all succeeded, before any sweep saw them."""
    shop.script_pods(PodBehaviour(run_for=0.2), namespace=NAMESPACE)
    started = _start(deps, name)
    shop.wait_for(
        lambda: all(j.get("status", {}).get("succeeded") for j in shop.objects(JOBS, NAMESPACE)),
        timeout=20,
        what="jobs complete",
    )
    return started


def _agents_uploaded(deps: Deps, capture_id: str | None, packets: int = 100) -> None:
    """Each node's upload role leaves its manifest in S3, as a capture that took packets does."""
    for node in stored_session(deps, capture_id).nodes:
        upload_manifest(deps.store, deps.settings.capture_bucket, "shop-prod", str(capture_id), node, packets)


def _sweep(reaper_deps: Deps) -> reaper.SweepReport:
    [report] = reaper.sweep(reaper_deps, ["shop-prod"])
    return report


def _sweep_until_closed(reaper_deps: Deps, shop: KubeEmulator, clock: Clock) -> list[reaper.SweepReport]:
    """Sweep, let the cluster finish the deletions, and sweep again, as the schedule does."""
    reports = [_sweep(reaper_deps)]
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="capture jobs deleted")
    clock.advance(300)
    reports.append(_sweep(reaper_deps))
    return reports


FLUSHING = "tests.eks-capture.io/uploader-flushing"  # holds a pod in Terminating, as a slow final upload does


def _set_pod_finalizers(shop: KubeEmulator, finalizers: list[str]) -> None:
    """Removing the last finalizer of a terminating pod removes it, as the API server does."""

    def change(pod: dict[str, Any]) -> None:
        pod["metadata"]["finalizers"] = finalizers

    for pod in shop.objects(PODS, NAMESPACE):
        shop.registry.mutate(PODS, NAMESPACE, pod["metadata"]["name"], change)


def test_a_capture_past_its_expiry_is_deleted_and_closed_with_a_verdict(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock, stack: Stack
) -> None:
    started = _start(deps)
    shop.wait_for(
        lambda: [p["status"].get("phase") for p in shop.objects(PODS, NAMESPACE)] == ["Running", "Running"],
        timeout=60,
        what="both capture pods running",
    )
    assert _sweep(reaper_deps).deleted == {}
    _agents_uploaded(deps, started.capture_id)
    _set_pod_finalizers(shop, [FLUSHING])

    clock.advance(300 + deps.settings.upload_grace_seconds * 2 + 1)
    first = _sweep(reaper_deps)
    still_deleting = shop.objects(JOBS, NAMESPACE)
    _set_pod_finalizers(shop, [])  # the uploaders are done
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="capture jobs deleted")
    clock.advance(300)
    second = _sweep(reaper_deps)

    assert first.deleted == {"deadline_exceeded": 2}
    assert first.closed == {}  # its Jobs stay until their pods are gone: an uploader may still be flushing
    assert [job["metadata"].get("deletionTimestamp") is not None for job in still_deleting] == [True, True]
    assert second.closed == {started.capture_id: "completed"}
    session = stored_session(deps, started.capture_id)
    assert {n.status for n in session.nodes.values()} == {"deadline_exceeded"}
    assert session.ended_at is not None
    assert shop.objects(PODS, NAMESPACE) == []
    teardown = kubectl_as(shop, function_session(stack, "TeardownFunction"))  # its own token
    assert teardown.check("get", "jobs,pods", "-n", NAMESPACE, "-o", "name") == ""


def test_a_finished_capture_is_removed_and_its_nodes_freed(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _finished(deps, shop)
    _agents_uploaded(deps, started.capture_id)
    clock.advance(200)

    first, _ = _sweep_until_closed(reaper_deps, shop, clock)

    assert first.deleted == {"completed": 2}
    assert first.closed == {started.capture_id: "completed"}  # a finished Job goes at once: nothing flushes
    session = stored_session(deps, started.capture_id)
    assert session.status == "completed"
    assert {n.status for n in session.nodes.values()} == {"completed"}
    again = load_event("start-capture-nodes")
    again["id"] = "a-later-request-for-the-same-nodes"
    assert trigger.handle(again, deps).skipped == {}


NOT_INDEXED = "1 of 1 node(s) captured: 1 file(s), 100 packets, 0 dropped; 1 file(s) in S3 not indexed"


@pytest.mark.parametrize(
    ("indexed_before", "indexed_later", "verdict"),
    [
        (None, True, "1 of 1 node(s) captured: 1 file(s), 100 packets, 0 dropped"),
        (None, False, NOT_INDEXED),
        (10, True, "1 of 1 node(s) captured: 1 file(s), 100 packets, 0 dropped"),
        (10, False, NOT_INDEXED),  # its earlier version is indexed: counted once, as the manifest lists it
    ],
    ids=[
        "closed-once-indexed",
        "closed-past-the-wait-saying-so",
        "written-again-closed-once-its-later-version-is-indexed",
        "written-again-closed-past-the-wait-saying-so",
    ],
)
def test_a_finished_capture_stays_open_while_a_file_its_manifest_lists_is_not_indexed(
    dynamodb: DynamoDBProxy,
    deps: Deps,
    reaper_deps: Deps,
    shop: KubeEmulator,
    clock: Clock,
    indexed_before: int | None,
    indexed_later: bool,
    verdict: str,
) -> None:
    """``indexed_before``: the packets of an earlier, shorter version of the file the index holds (the
    recorder puts a longer copy of a file tcpdump still had open under the same key), whose later
    version's indexer still runs."""
    started = _finished(deps, shop, "start-capture-instances")
    bucket, capture_id = deps.settings.capture_bucket, str(started.capture_id)
    if indexed_before is None:
        late = upload_manifest(deps.store, bucket, "shop-prod", capture_id, NODE_A, 100, indexed=False)
    else:
        late = upload_manifest(deps.store, bucket, "shop-prod", capture_id, NODE_A, indexed_before)
        write_again(bucket, late, 100)
    clock.advance(200)
    deleted_before = dynamodb.requests["DeleteItem"]

    first, waiting = _sweep_until_closed(reaper_deps, shop, clock)  # its indexer still running or retrying
    meanwhile = stored_session(deps, started.capture_id)
    if indexed_later:
        index_file(deps.store, bucket, late, sequencer="00000000000000000000000000000002")
    else:
        clock.advance(deps.settings.index_wait_seconds)
    last = _sweep(reaper_deps)

    assert first.deleted == {"completed": 1}
    assert (first.closed, waiting.closed, waiting.awaiting_index) == ({}, {}, {started.capture_id: 1})
    # the node's lock is freed as its Job is deleted, and again by the first sweep that keeps the capture
    # open (a Job gone before a sweep saw it), not by each sweep of the wait
    assert dynamodb.requests["DeleteItem"] - deleted_before == 2
    assert meanwhile.status == "running"
    assert meanwhile.verdict.startswith(
        "its nodes are done; waiting for the index to hold every file their manifests list in S3: it closes"
        " once it does, or at "
    ), "a session its nodes are done with no longer says it is capturing"
    assert last.closed == {started.capture_id: "completed"}
    assert stored_session(deps, started.capture_id).verdict == verdict


def test_a_manifest_dated_by_a_node_clock_days_ahead_waits_for_the_index_only_from_the_last_upload_moment(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _finished(deps, shop, "start-capture-instances")
    ahead = clock() + timedelta(days=3)
    bucket, capture_id = deps.settings.capture_bucket, str(started.capture_id)
    upload_manifest(deps.store, bucket, "shop-prod", capture_id, NODE_A, 100, indexed=False, written_at=ahead)
    clock.advance(200)
    _sweep_until_closed(reaper_deps, shop, clock)
    settings = deps.settings
    last_upload = stored_session(deps, capture_id).expires_at + timedelta(
        seconds=settings.upload_grace_seconds + TERMINATION_MARGIN_SECONDS
    )

    clock.moment = last_upload + timedelta(seconds=settings.index_wait_seconds - 1)
    before = _sweep(reaper_deps)
    clock.moment = last_upload + timedelta(seconds=settings.index_wait_seconds)
    after = _sweep(reaper_deps)

    assert (before.closed, before.awaiting_index) == ({}, {capture_id: 1})
    assert after.closed == {capture_id: "completed"}
    assert stored_session(deps, capture_id).verdict == NOT_INDEXED


def test_a_failed_pod_is_reported_with_its_containers_message(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    shop.script_pods(
        PodBehaviour(run_for=0.1, exit_code=1, message="tcpdump: syntax error in filter"), namespace=NAMESPACE
    )
    started = _start(deps, "start-capture-instances")
    shop.wait_for(
        lambda: all(j.get("status", {}).get("failed") for j in shop.objects(JOBS, NAMESPACE)),
        timeout=20,
        what="job failed",
    )
    clock.advance(200)

    _sweep_until_closed(reaper_deps, shop, clock)

    session = stored_session(deps, started.capture_id)
    node = session.nodes[NODE_A]
    assert node.status == "failed"
    assert "exited 1: tcpdump: syntax error in filter" in node.reason
    assert session.status == "failed"


def test_a_pod_stuck_pending_is_deleted_as_never_started(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    shop.script_pods(PodBehaviour(image_pull_error=True), namespace=NAMESPACE)
    started = _start(deps, "start-capture-instances")
    shop.settle()
    assert _sweep(reaper_deps).deleted == {}

    clock.advance(deps.settings.pending_bound_seconds + 5)
    _sweep_until_closed(reaper_deps, shop, clock)

    node = stored_session(deps, started.capture_id).nodes[NODE_A]
    assert node.status == "never_started"
    assert "ImagePullBackOff" in node.reason


def _set_node(shop: KubeEmulator, node: str, change: Callable[[dict[str, Any]], None]) -> None:
    shop.registry.mutate(NODES, None, node, change)


def _jobs_finished(shop: KubeEmulator) -> bool:
    jobs = shop.objects(JOBS, NAMESPACE)
    return len(jobs) == 2 and all(
        j.get("status", {}).get("succeeded") or j.get("status", {}).get("failed") for j in jobs
    )


def test_a_capture_on_a_full_node_never_started_and_says_the_kubelet_was_out_of_pods(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    shop.script_pods(PodBehaviour(run_for=0.2), namespace=NAMESPACE)
    on_a = [p for p in shop.objects(PODS) if p["spec"].get("nodeName") == NODE_A]
    _set_node(
        shop, NODE_A, lambda node: node["status"]["allocatable"].update(pods=str(len(on_a)))
    )  # max-pods
    started = _start(deps)
    shop.wait_for(lambda: _jobs_finished(shop), timeout=20, what="both jobs finished")
    upload_manifest(
        deps.store, deps.settings.capture_bucket, "shop-prod", str(started.capture_id), NODE_B, 100
    )
    clock.advance(200)

    _sweep_until_closed(reaper_deps, shop, clock)

    nodes = stored_session(deps, started.capture_id).nodes
    used = len(on_a)
    assert (nodes[NODE_A].status, nodes[NODE_A].reason) == (
        "never_started",
        "the node's kubelet rejected the pod (OutOfpods): Node didn't have enough resource: pods, "
        f"requested: 1, used: {used}, capacity: {used}",
    )
    assert nodes[NODE_B].status == "completed"


def test_a_cordoned_or_no_schedule_tainted_node_is_still_captured(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    shop.script_pods(PodBehaviour(run_for=0.2), namespace=NAMESPACE)
    _set_node(shop, NODE_A, lambda node: node["spec"].update(unschedulable=True))
    taint = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    _set_node(shop, NODE_B, lambda node: node["spec"].update(taints=[taint]))
    started = _start(deps)
    shop.wait_for(lambda: _jobs_finished(shop), timeout=20, what="both jobs finished")
    _agents_uploaded(deps, started.capture_id)
    clock.advance(200)

    _sweep_until_closed(reaper_deps, shop, clock)

    assert {n.status for n in stored_session(deps, started.capture_id).nodes.values()} == {"completed"}


def test_a_stopped_capture_ends_with_its_nodes_stopped(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _start(deps)
    stop = load_event("stop-capture")
    stop["detail"]["capture_id"] = started.capture_id
    trigger.handle(stop, deps)
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="jobs deleted")
    _agents_uploaded(deps, started.capture_id)
    clock.advance(200)

    report = _sweep(reaper_deps)

    assert report.closed == {started.capture_id: "completed"}
    assert {n.status for n in stored_session(deps, started.capture_id).nodes.values()} == {"stopped"}


def _orphan_job(deps: Deps, node: str, started_at: datetime) -> dict[str, Any]:
    spec = CaptureSpec(
        capture_id="cap-20261125T000000Z-deadbeef",  # type: ignore[arg-type]
        cluster="shop-prod",
        options=CaptureOptions.defaults(deps.settings),
        reason="a trigger that crashed before writing its session",
        started_at=started_at,
    )
    return capture_job(spec, NodeInfo(name=node), deps.settings)


def test_an_orphan_job_with_no_session_is_still_reaped_after_its_expiry(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    Cluster("shop-prod").create_job(NAMESPACE, _orphan_job(deps, NODE_A, clock() - timedelta(hours=2)))
    shop.settle()

    report = _sweep(reaper_deps)

    assert report.deleted == {"deadline_exceeded": 1}
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="orphan deleted")


def test_a_session_whose_jobs_vanished_is_closed(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _start(deps)
    for job in shop.objects(JOBS, NAMESPACE):
        Cluster("shop-prod").delete_job(NAMESPACE, job["metadata"]["name"])
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="jobs deleted by hand")
    _agents_uploaded(deps, started.capture_id)
    clock.advance(200)

    report = _sweep(reaper_deps)

    assert report.closed == {started.capture_id: "completed"}
    assert "removed before a sweep saw it" in stored_session(deps, started.capture_id).nodes[NODE_A].reason


def test_a_sweep_leaves_a_capture_that_has_just_started_alone(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator
) -> None:
    started = _start(deps)

    report = _sweep(reaper_deps)

    assert report.deleted == {}
    assert report.closed == {}
    assert stored_session(deps, started.capture_id).status == "running"
    assert len(shop.objects(JOBS, NAMESPACE)) == 2


def test_concurrent_sweeps_delete_each_job_once_and_close_each_session_once(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _start(deps, "start-capture-all")
    _agents_uploaded(deps, started.capture_id)
    clock.advance(3600)

    with ThreadPoolExecutor(max_workers=3) as pool:
        first = list(pool.map(lambda _: _sweep(reaper_deps), range(3)))
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="jobs deleted")
    with ThreadPoolExecutor(max_workers=3) as pool:
        second = list(pool.map(lambda _: _sweep(reaper_deps), range(3)))

    assert sum(r.deleted.total() for r in first) == 3
    assert [r.closed for r in first + second if r.closed] == [{started.capture_id: "completed"}]


def test_an_api_error_mid_sweep_is_finished_by_the_next_sweep(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = _start(deps)
    _agents_uploaded(deps, started.capture_id)
    clock.advance(3600)
    shop.faults.fail("delete", "jobs", status=500, times=20)

    failed = _sweep(reaper_deps)
    shop.faults.clear()
    _sweep_until_closed(reaper_deps, shop, clock)

    assert failed.errors
    assert stored_session(deps, started.capture_id).status == "completed"


def test_one_sweep_reaps_a_thousand_capture_pods_with_one_paginated_list_of_each_kind(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    cluster = Cluster("shop-prod")
    old = clock() - timedelta(hours=3)
    room = {"pods": "1100", "cpu": "1000", "memory": "4000Gi"}  # a node with room for every capture pod
    _set_node(shop, NODE_B, lambda node: node["status"]["allocatable"].update(room))
    for index in range(1000):
        spec = CaptureSpec(
            capture_id=f"cap-20261125T000000Z-{index:08x}",  # type: ignore[arg-type]
            cluster="shop-prod",
            options=CaptureOptions.defaults(deps.settings),
            reason="load",
            started_at=old,
        )
        cluster.create_job(NAMESPACE, capture_job(spec, NodeInfo(name=NODE_B), deps.settings))
    shop.settle(timeout=60)
    shop.calls.reset()

    report = _sweep(reaper_deps)

    assert report.deleted == {"deadline_exceeded": 1000}
    pages = math.ceil(1000 / PAGE_SIZE)  # one list of each kind, in pages; a page retried counts again
    assert shop.calls[("list", "jobs")] <= 2 * pages
    assert shop.calls[("list", "pods")] <= 2 * pages
    assert shop.calls.total("delete") == 1000


def test_the_schedule_in_the_template_runs_the_sweep(deps: Deps, shop: KubeEmulator, router: Router) -> None:
    _start(deps)

    router.fire_schedule("TeardownFunction")
    [invocation] = [i for i in router.drain() if i.function == "TeardownFunction"]

    assert invocation.error is None, invocation.error
    [sweep] = invocation.result["sweeps"]
    assert sweep["cluster"] == "shop-prod"
    assert sweep["jobs_seen"] == 2
