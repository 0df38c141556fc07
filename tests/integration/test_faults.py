"""Faults injected into the local cloud, then the system's invariants checked after each scenario:

- every requested node has exactly one capture Job or a recorded reason (failed or skipped);
- no capture pod outlives its expiry plus one sweep;
- index totals equal the sum of the capture's file items;
- nothing is left in the cluster, and no node lock in the table, after teardown.

Kubernetes API faults (500, 429 with Retry-After, dropped connections) on chosen verbs during the
trigger and the sweep; an S3 outage under the indexer, delivered through the router with Lambda's two
retries; duplicate events racing on DynamoDB's conditional writes; a trigger invocation killed by its
timeout after its first Job and retried. DynamoDB throttling under bursts is in test_faults_throttling.py,
the packet accounting of the real agent under an S3 outage, a full budget and SIGTERM in
test_faults_packets.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_capture.captures import reaper, trigger
from eks_capture.captures.deps import AwsClients, Deps
from eks_capture.captures.plan import Outcome
from eks_capture.captures.reaper import TRIGGER_QUIET_SECONDS
from eks_capture.errors import CaptureError, ClusterAccessDenied, NodeLocksNotTaken
from eks_capture.ids import capture_id_for_event
from eks_capture.kube.calls import Cluster
from eks_capture.kube.labels import LABEL_CAPTURE_ID
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import MotoServer
from localcloud.kube import KubeEmulator, PodBehaviour
from localcloud.kube.resources import JOBS
from localcloud.outages import DynamoDBProxy, PausableProxy, S3SlowingDown, ThrottlingAnswer
from localcloud.router import Router
from localcloud.template import Stack, load_template
from tests.events import load_event
from tests.fixtures.clock import Clock
from tests.fixtures.cluster import as_function, function_store
from tests.fixtures.invariants import (
    assert_each_node_has_one_capture_or_a_reason,
    assert_one_live_capture_per_node,
    assert_totals_equal_the_file_items,
    capture_jobs,
    tear_down_and_assert_nothing_left,
)
from tests.fixtures.recorders import start_recorder_on, wait_for_running_recorders
from tests.fixtures.sessions import manual_session, stored_session
from tests.fixtures.stack import LOCAL_LAMBDA_ENV, STACK_PARAMETERS
from tests.fixtures.uploads import index_file, upload_manifest
from tests.fixtures.waiting import eventually

NAMESPACE = "eks-capture"
CLUSTER = "shop-prod"
CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
CUT_TIMEOUT_SECONDS = 6  # room for the retry's start on a loaded machine (1.4 s at load 12, over 3 at 20)
SLOW_API_SECONDS = CUT_TIMEOUT_SECONDS + 1.0  # the first attempt dies waiting for its Jobs
ALL_NODES = {
    "ip-192-168-12-34.us-west-2.compute.internal",
    "ip-192-168-40-7.us-west-2.compute.internal",
    "ip-192-168-77-9.us-west-2.compute.internal",
}
NODE_OF_INSTANCE_ALARM = "ip-192-168-12-34.us-west-2.compute.internal"  # i-0a1b2c3d4e5f60718


# --- the invariants ----------------------------------------------------------------------------


# --- Kubernetes API faults during the trigger --------------------------------------------------


@dataclass(frozen=True)
class ApiFault:
    """A fault of the emulator: fail (status) or drop, on one verb and resource."""

    verb: str
    resource: str
    status: int | None
    times: int | None = None
    rate: float = 1.0

    def inject(self, shop: KubeEmulator) -> None:
        if self.status is None:
            shop.faults.drop(self.verb, self.resource, times=self.times, rate=self.rate)
        else:
            shop.faults.fail(
                self.verb, self.resource, status=self.status, times=self.times, rate=self.rate, retry_after=0
            )


TRIGGER_FAULTS = {
    "throttled job creation, retried": ApiFault("create", "jobs", 429, times=3),
    "one job creation fails with 500": ApiFault("create", "jobs", 500, times=1),
    "one job creation connection dropped": ApiFault("create", "jobs", None, times=1),
    "half the job creations fail": ApiFault("create", "jobs", 500, rate=0.5),
    "node list fails twice with 500": ApiFault("list", "nodes", 500, times=2),
    "node list connection dropped twice": ApiFault("list", "nodes", None, times=2),
    "job list throttled twice": ApiFault("list", "jobs", 429, times=2),
    "node list down for the whole invocation": ApiFault("list", "nodes", 500),
}


@pytest.mark.parametrize("fault", TRIGGER_FAULTS.values(), ids=TRIGGER_FAULTS.keys())
def test_api_faults_during_the_trigger_leave_each_node_with_one_capture_or_a_reason(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock, fault: ApiFault
) -> None:
    event = load_event("start-capture-all")
    fault.inject(shop)

    try:
        first: Outcome | CaptureError = trigger.handle(event, deps)
    except CaptureError as error:
        first = error
    shop.faults.clear()
    redelivered = trigger.handle(event, deps)  # EventBridge's retry of a failed or a lost delivery

    if isinstance(first, CaptureError):
        assert first.retryable, first.to_dict()
        assert redelivered.status == "running"
    else:
        assert redelivered.status == "duplicate"
    assert redelivered.capture_id is not None
    session = assert_each_node_has_one_capture_or_a_reason(
        deps.store, shop, redelivered.capture_id, ALL_NODES
    )
    assert_one_live_capture_per_node(shop)
    tear_down_and_assert_nothing_left(reaper_deps, shop, clock, session.expires_at)
    closed = stored_session(deps, redelivered.capture_id)
    assert closed.status in ("completed", "failed")


# --- Kubernetes API faults during the sweep ----------------------------------------------------

SWEEP_FAULTS = {
    "job deletions fail twice with 500": ApiFault("delete", "jobs", 500, times=2),
    "job list connection dropped once": ApiFault("list", "jobs", None, times=1),
    "pod list throttled twice": ApiFault("list", "pods", 429, times=2),
}


@pytest.mark.parametrize("fault", SWEEP_FAULTS.values(), ids=SWEEP_FAULTS.keys())
def test_transient_api_faults_during_a_sweep_are_absorbed_by_its_retries(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock, fault: ApiFault
) -> None:
    started = trigger.handle(load_event("start-capture-all"), deps)
    assert started.capture_id is not None
    session = stored_session(deps, started.capture_id)
    fault.inject(shop)

    reports = tear_down_and_assert_nothing_left(reaper_deps, shop, clock, session.expires_at)

    assert [r.errors for r in reports] == [[], []]


def test_a_sweep_that_cannot_delete_leaves_the_capture_open_and_the_next_one_finishes_it(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    started = trigger.handle(load_event("start-capture-all"), deps)
    assert started.capture_id is not None
    session = stored_session(deps, started.capture_id)
    shop.faults.fail("delete", "jobs", status=500)
    for node in session.nodes:  # each node's upload role left its manifest: the capture took packets
        upload_manifest(
            deps.store, deps.settings.capture_bucket, CLUSTER, started.capture_id, node, packets=100
        )
    clock.moment = session.expires_at + timedelta(seconds=deps.settings.upload_grace_seconds + 1)

    [failed] = reaper.sweep(reaper_deps, [CLUSTER])

    assert len(failed.errors) == len(ALL_NODES)
    assert failed.closed == {}
    assert len(capture_jobs(shop, started.capture_id)) == len(ALL_NODES)
    reopened = stored_session(deps, started.capture_id)
    assert reopened.status == "running"
    shop.faults.clear()
    tear_down_and_assert_nothing_left(reaper_deps, shop, clock, session.expires_at)
    closed = stored_session(deps, started.capture_id)
    assert closed.status == "completed"


# --- DynamoDB conditional-check races ----------------------------------------------------------


def test_the_same_event_delivered_eight_times_at_once_starts_one_job_per_node(
    deps: Deps, shop: KubeEmulator
) -> None:
    event = load_event("start-capture-all")

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: trigger.handle(event, deps), range(8)))

    assert {o.capture_id for o in outcomes} != {None}
    assert len({o.capture_id for o in outcomes}) == 1
    assert {o.status for o in outcomes} <= {"running", "duplicate"}
    assert len(deps.store.sessions(CLUSTER)) == 1
    session = assert_each_node_has_one_capture_or_a_reason(
        deps.store, shop, str(outcomes[0].capture_id), ALL_NODES
    )
    assert {n.status for n in session.nodes.values()} == {"pending"}


def test_different_events_racing_for_the_same_nodes_give_each_node_to_one_capture(
    deps: Deps, shop: KubeEmulator
) -> None:
    events = []
    for index in range(6):
        event = load_event("start-capture-all")
        event["id"] = f"racing-request-{index}"
        events.append(event)
    wide = replace(deps, settings=deps.settings.model_copy(update={"max_concurrent_captures": 10}))

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda e: trigger.handle(e, wide), events))

    owners = Counter(node for o in outcomes for node, status in o.nodes.items() if status == "pending")
    assert owners == Counter(dict.fromkeys(ALL_NODES, 1))
    for outcome in outcomes:
        assert outcome.capture_id is not None
        assert_each_node_has_one_capture_or_a_reason(deps.store, shop, outcome.capture_id, ALL_NODES)
    assert_one_live_capture_per_node(shop)


class PausedCluster:
    """The trigger's cluster factory, waiting at its first call until the test says ``go``: an invocation
    paused once it has read its session (an alarm's: claimed its cooldown), before it plans or makes
    anything."""

    def __init__(self, factory: Callable[[str], Cluster]) -> None:
        self.factory = factory
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, name: str) -> Cluster:
        self.reached.set()
        self.go.wait(timeout=30)
        return self.factory(name)


def flapped_alarm() -> dict[str, Any]:
    """The sample instance alarm's event once more, as EventBridge sends it when the alarm flaps back into
    ALARM: the same alarm, another event id."""
    event = load_event("alarm-single-metric-instance")
    event["id"] = "the-alarm-flapped-back-into-alarm"
    return event


@pytest.mark.parametrize(
    "flapped_meanwhile",
    [
        pytest.param(False, id="the duplicate starts and keeps the cooldown"),
        pytest.param(
            True, id="the alarm flapped meanwhile: its capture keeps the cooldown, the duplicate yields"
        ),
    ],
)
def test_a_duplicate_delivery_outliving_a_failed_first_one_leaves_one_capture_in_the_cooldown(
    deps: Deps, shop: KubeEmulator, stack: Stack, settings: Settings, flapped_meanwhile: bool
) -> None:
    event = load_event("alarm-single-metric-instance")
    alarm = event["detail"]["alarmName"]
    flapped = flapped_alarm()
    paused_cluster = PausedCluster(deps.cluster)  # the duplicate: cooldown claimed, nothing stored
    unauthorized = replace(deps, cluster=as_function(stack, "IndexerFunction", settings))  # no access entry
    with ThreadPoolExecutor(max_workers=1) as pool:
        paused = pool.submit(trigger.handle, event, replace(deps, cluster=paused_cluster))
        assert paused_cluster.reached.wait(timeout=30)
        with pytest.raises(ClusterAccessDenied):
            trigger.handle(event, unauthorized)  # the first delivery fails before storing anything
        first_flap = trigger.handle(flapped, deps) if flapped_meanwhile else None
        paused_cluster.go.set()
        duplicate = paused.result(timeout=60)
    later_flap = trigger.handle(flapped, deps) if first_flap is None else first_flap

    running = first_flap if first_flap is not None else duplicate
    refused = duplicate if first_flap is not None else later_flap
    assert running.status == "running"
    cooldown = boto3.client("dynamodb").get_item(
        TableName=settings.capture_table, Key={"pk": {"S": f"COOLDOWN#{alarm}"}, "sk": {"S": "COOLDOWN"}}
    )
    assert cooldown.get("Item", {}).get("capture_id") == {"S": running.capture_id}
    assert refused.status == "rejected"
    assert refused.message == f"alarm {alarm} is cooling down after capture {running.capture_id}"
    assert stored_session(deps, refused.capture_id).status == "rejected"
    assert [j["metadata"]["labels"][LABEL_CAPTURE_ID] for j in capture_jobs(shop)] == [running.capture_id]


@dataclass(frozen=True)
class FirstAttempt:
    """How an alarm capture's first attempt dies, its session stored: DynamoDB refusing ``operation`` on
    items naming ``naming`` with ``error``; what the invocation raises, and the Jobs it leaves."""

    operation: str
    naming: str
    error: ThrottlingAnswer
    raises: type[Exception]
    jobs: int
    recorder: bool = False  # the node's recorder serves it: a window asked for, no Job


FIRST_ATTEMPTS = {
    "its Job made, the session's record denied: the retry goes on and records it": FirstAttempt(
        "UpdateItem", '"SESSION"', "AccessDeniedException", ClientError, jobs=1
    ),
    "its recorder asked for a window, the session's record denied: the retry goes on": FirstAttempt(
        "UpdateItem", '"SESSION"', "AccessDeniedException", ClientError, jobs=0, recorder=True
    ),
    "its node lock throttled, no Job: the retry is rejected": FirstAttempt(
        "TransactWriteItems", "LOCK#", "TransactionCanceledException", NodeLocksNotTaken, jobs=0
    ),
}


def recording_on(node: str, deps: Deps, shop: KubeEmulator) -> str:
    """Start Recorder on ``node`` only; the name of its recorder pod once Running."""
    assert trigger.handle(start_recorder_on([node]), deps).status == "recording"
    [recorder] = wait_for_running_recorders(shop, 1)
    assert recorder["spec"].get("nodeName") == node
    return str(recorder["metadata"]["name"])


@pytest.mark.parametrize("first", FIRST_ATTEMPTS.values(), ids=FIRST_ATTEMPTS.keys())
def test_a_retry_after_a_flap_took_the_ended_cooldown_says_what_its_earlier_attempt_left(
    deps: Deps,
    shop: KubeEmulator,
    settings: Settings,
    dynamodb: DynamoDBProxy,
    clock: Clock,
    first: FirstAttempt,
) -> None:
    event = load_event("alarm-single-metric-instance")
    flapped = flapped_alarm()
    short = replace(  # a cooldown shorter than Lambda's retry delay; the table reached through the proxy
        deps,
        settings=settings.model_copy(update={"alarm_cooldown_seconds": 60}),
        store=function_store(settings),
        now=clock,
    )
    recorder = recording_on(NODE_OF_INSTANCE_ALARM, deps, shop) if first.recorder else None
    dynamodb.throttle(first.operation, error=first.error, naming=first.naming)
    with pytest.raises(first.raises):
        trigger.handle(event, short)
    dynamodb.clear()
    made = [job["metadata"]["name"] for job in capture_jobs(shop)]
    clock.advance(90)  # Lambda's retry comes after the cooldown ended
    paused_cluster = PausedCluster(short.cluster)  # the flap's capture: the cooldown taken, nothing more yet
    with ThreadPoolExecutor(max_workers=1) as pool:
        flap = pool.submit(trigger.handle, flapped, replace(short, cluster=paused_cluster))
        assert paused_cluster.reached.wait(timeout=30)
        retried = trigger.handle(event, short)
        paused_cluster.go.set()
        flap.result(timeout=60)

    session = stored_session(deps, retried.capture_id)
    assert len(made) == first.jobs
    assert [job["metadata"]["name"] for job in capture_jobs(shop, retried.capture_id)] == made
    if made:  # the Job captures whatever the cooldown says: the session names it
        assert (retried.status, session.status) == ("running", "running"), retried.message
        assert [node.job for node in session.nodes.values()] == made
    elif recorder is not None:  # the ring's window reaches S3 under the capture: the session says so
        assert (retried.status, session.status) == ("running", "running"), retried.message
        [node] = session.nodes.values()
        assert (node.node, node.status, node.job) == (NODE_OF_INSTANCE_ALARM, "running", None)
        assert node.reason.startswith(f"recorder {recorder} asked for its window")
    else:  # nothing captures: refused, as the session says
        assert (retried.status, session.status) == ("rejected", "rejected"), retried.message
        assert session.verdict == retried.message
        assert session.verdict.startswith(
            f"alarm {event['detail']['alarmName']} is cooling down after capture"
        )


def test_a_sweep_closing_a_starting_capture_while_its_retry_plans_leaves_no_job_under_the_closed_session(
    deps: Deps, reaper_deps: Deps, shop: KubeEmulator, clock: Clock
) -> None:
    event = load_event("start-capture-all")
    capture_id = capture_id_for_event(event["id"], datetime.fromisoformat(event["time"]))
    first_attempt = clock() - timedelta(seconds=TRIGGER_QUIET_SECONDS + 60)  # its locks were refused
    deps.store.create_session(
        manual_session(capture_id, "first attempt", event["id"]).model_copy(
            update={"created_at": first_attempt, "expires_at": first_attempt + timedelta(minutes=5)}
        )
    )
    paused_cluster = PausedCluster(deps.cluster)  # Lambda's retry waits there, its session read 'starting'
    with ThreadPoolExecutor(max_workers=1) as pool:
        paused = pool.submit(trigger.handle, event, replace(deps, cluster=paused_cluster))
        assert paused_cluster.reached.wait(timeout=30)
        reaper.sweep(reaper_deps, [event["detail"]["cluster"]])  # past the quiet time, no Job: closed
        paused_cluster.go.set()
        retried = paused.result(timeout=60)

    closed = stored_session(deps, capture_id)
    assert closed.status == "failed"
    assert retried.status == "duplicate"  # what the session says, not a capture running unrecorded
    assert capture_jobs(shop, capture_id) == []


def test_a_failed_start_whose_cooldown_dynamodb_will_not_free_still_fails_with_its_own_error(
    deps: Deps, stack: Stack, settings: Settings, dynamodb: DynamoDBProxy
) -> None:
    event = load_event("alarm-single-metric-instance")
    alarm = event["detail"]["alarmName"]
    unauthorized = replace(  # no access entry: the start fails before storing anything
        deps,
        store=function_store(settings),
        cluster=as_function(stack, "IndexerFunction", settings),
    )
    dynamodb.throttle("TransactWriteItems", error="AccessDeniedException", naming="COOLDOWN#")

    with pytest.raises(ClusterAccessDenied):  # what the handler maps and answers; not DynamoDB's refusal
        trigger.handle(event, unauthorized)

    dynamodb.clear()
    cooldown = boto3.client("dynamodb").get_item(
        TableName=settings.capture_table, Key={"pk": {"S": f"COOLDOWN#{alarm}"}, "sk": {"S": "COOLDOWN"}}
    )
    assert "Item" in cooldown  # held for its time: one capture per cooldown either way


# --- an S3 outage under the indexer ------------------------------------------------------------


@pytest.fixture
def s3_proxy(aws: MotoServer) -> Iterator[PausableProxy]:
    """S3 reached through a forwarder that can go away (moto's objects survive the outage)."""
    proxy = PausableProxy(int(aws.endpoint_url.rsplit(":", 1)[1]))
    proxy.resume()
    yield proxy
    proxy.pause()


@pytest.fixture
def indexer_router(stack: Stack, aws: MotoServer, s3_proxy: PausableProxy) -> Iterator[Router]:
    """template.yaml's wiring, the functions' S3 calls going through the proxy (one try per call)."""
    environment = {
        **os.environ,
        **aws.env(),
        **LOCAL_LAMBDA_ENV,
        "AWS_ENDPOINT_URL_S3": s3_proxy.endpoint_url,
        "AWS_MAX_ATTEMPTS": "1",
    }
    live = Router(stack, environment=environment)
    live.deploy(create_resources=False)
    yield live
    live.stop()


def _session_for_files(settings: Settings, capture_id: str) -> CaptureStore:
    store = function_store(settings)
    store.create_session(manual_session(capture_id, "fault proof", cluster=CLUSTER))
    return store


def test_an_s3_outage_fails_the_indexer_cleanly_and_a_redelivery_indexes_each_file_once(
    indexer_router: Router, s3_proxy: PausableProxy, settings: Settings
) -> None:
    capture_id = "cap-20261125T031200Z-0a1b2c3d"
    store = _session_for_files(settings, capture_id)
    s3 = boto3.client("s3")
    body = (CAPTURES / "any-nano-head.pcap").read_bytes()
    keys = [f"captures/{CLUSTER}/{capture_id}/node-{i}/20261125T031200Z-0000{i}.pcap" for i in range(4)]
    for key in keys:
        s3.put_object(Bucket=settings.capture_bucket, Key=key, Body=body)

    s3_proxy.pause()
    during = indexer_router.drain()
    s3_proxy.resume()

    assert len(during) == len(keys)
    assert all(i.error is not None and i.attempts == 3 for i in during)  # Lambda's first try and 2 retries
    assert store.files_of_capture(capture_id) == []
    assert_totals_equal_the_file_items(store, capture_id)

    with ThreadPoolExecutor(max_workers=4) as pool:  # redriven from the DLQ, some twice, concurrently
        after = list(pool.map(lambda i: indexer_router.invoke(i.function, i.event), during + during[:2]))

    assert all(i.error is None for i in after)
    statuses = Counter(i.result["files"][0]["status"] for i in after)
    assert statuses == {"indexed": len(keys), "duplicate": 2}
    assert sorted(f.s3_key for f in store.files_of_capture(capture_id)) == sorted(keys)
    assert_totals_equal_the_file_items(store, capture_id)


@pytest.fixture
def s3_slowing_down() -> Iterator[S3SlowingDown]:
    endpoint = S3SlowingDown()
    yield endpoint
    endpoint.stop()


@pytest.mark.parametrize("outage", ["connections refused", "503 SlowDown"])
def test_an_s3_outage_while_the_sweep_reads_a_manifest_keeps_the_capture_open_for_the_next_sweep(
    deps: Deps,
    reaper_deps: Deps,
    shop: KubeEmulator,
    clock: Clock,
    s3_proxy: PausableProxy,
    s3_slowing_down: S3SlowingDown,
    outage: str,
) -> None:
    """The manifest lists a file whose indexer has not run yet: a sweep that took the failed read for 'no
    manifest' would close the capture at once, 0 files and its node failed."""
    shop.script_pods(PodBehaviour(run_for=0.2), namespace=NAMESPACE)
    started = trigger.handle(load_event("start-capture-instances"), deps)
    capture_id = str(started.capture_id)
    shop.wait_for(
        lambda: all(j.get("status", {}).get("succeeded") for j in shop.objects(JOBS, NAMESPACE)),
        timeout=20,
        what="job complete",
    )
    bucket = deps.settings.capture_bucket
    key = upload_manifest(deps.store, bucket, CLUSTER, capture_id, NODE_OF_INSTANCE_ALARM, 100, indexed=False)
    once = Config(retries={"max_attempts": 1})
    through_proxy = boto3.client("s3", endpoint_url=s3_proxy.endpoint_url, config=once)
    slowed = boto3.client("s3", endpoint_url=s3_slowing_down.endpoint_url, config=once)
    clock.advance(200)

    failing = slowed if outage == "503 SlowDown" else through_proxy
    if outage == "connections refused":
        s3_proxy.pause()
    [during] = reaper.sweep(replace(reaper_deps, aws=AwsClients(s3=failing)), [CLUSTER])
    if outage == "connections refused":
        s3_proxy.resume()
    meanwhile = stored_session(deps, capture_id)
    shop.wait_for(lambda: shop.objects(JOBS, NAMESPACE) == [], timeout=60, what="capture jobs deleted")
    sweeper = replace(reaper_deps, aws=AwsClients(s3=through_proxy))
    [waiting] = reaper.sweep(sweeper, [CLUSTER])
    index_file(deps.store, bucket, key)
    [after] = reaper.sweep(sweeper, [CLUSTER])

    assert (during.deleted, during.closed) == ({"completed": 1}, {})
    assert [error.split(":")[0] for error in during.errors] == [f"close {capture_id}"]
    assert meanwhile.status == "running"
    assert (waiting.closed, waiting.awaiting_index) == ({}, {capture_id: 1})
    assert after.closed == {capture_id: "completed"}
    verdict = stored_session(deps, capture_id).verdict
    assert verdict == "1 of 1 node(s) captured: 1 file(s), 100 packets, 0 dropped"


# --- an invocation killed mid-way and retried --------------------------------------------------


@pytest.fixture
def short_lived_router(stack: Stack, aws: MotoServer, shop: KubeEmulator) -> Iterator[Router]:
    """The template's wiring with the trigger's timeout cut to 6 s, so a slow API kills an invocation."""
    template = load_template()
    template["Resources"]["TriggerFunction"]["Properties"]["Timeout"] = CUT_TIMEOUT_SECONDS
    short = Stack(template, stack.name, dict(STACK_PARAMETERS))
    live = Router(short, environment={**os.environ, **aws.env(), **LOCAL_LAMBDA_ENV})
    live.deploy(create_resources=False)
    yield live
    live.stop()


def test_a_trigger_killed_after_its_first_job_and_retried_finishes_the_capture_once(
    short_lived_router: Router, shop: KubeEmulator, settings: Settings
) -> None:
    warm = short_lived_router.invoke("TriggerFunction", load_event("alarm-ok"))
    assert warm.result["status"] == "ignored"
    shop.faults.add_latency(SLOW_API_SECONDS, "create", "jobs")
    first_create: list[float] = []

    def speed_up_after_the_first_create() -> None:
        eventually(
            lambda: shop.calls["create", "jobs"] >= 1, timeout=30, interval=0.01, what="no Job create came"
        )
        first_create.append(time.monotonic())
        shop.faults.clear()

    watcher = threading.Thread(target=speed_up_after_the_first_create, daemon=True)
    watcher.start()

    invocation = short_lived_router.invoke("TriggerFunction", load_event("start-capture-all"))
    watcher.join()

    assert invocation.attempts == 2, invocation.error
    assert invocation.error is None
    assert invocation.result["status"] == "running"
    capture_id = invocation.result["capture_id"]
    store = function_store(settings)
    time.sleep(max(0.0, first_create[0] + SLOW_API_SECONDS + 0.3 - time.monotonic()))  # the killed
    # attempt's slow requests land at the API server after all
    session = assert_each_node_has_one_capture_or_a_reason(store, shop, capture_id, ALL_NODES)
    assert {n.status for n in session.nodes.values()} == {"pending"}
    assert session.status == "running"
    assert len(capture_jobs(shop)) == len(ALL_NODES)
