"""Under load the caps and exactly-once hold: a burst of 200 alarm events (redeliveries, flapping
alarms, a second alarm per node) over 50 nodes through the trigger, as parallel as its reserved
concurrency lets AWS run it; and 1,000 S3 object events (10 % delivered twice) through the indexer on
16 threads. bench/bench_load.py runs the same workloads bigger and reports throughput."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import boto3
import pytest

from eks_capture.captures import indexer, trigger
from eks_capture.captures.deps import Deps
from eks_capture.events.models import AlarmStateChange, parse_event
from eks_capture.ids import capture_id_for_event
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from localcloud.aws import MotoServer
from localcloud.burst import (
    alarm_burst,
    burst_nodes,
    capture_files,
    first_packets,
    live_captures_per_node,
    object_created,
    run_parallel,
    with_duplicates,
)
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.outages import DynamoDBProxy
from localcloud.template import Stack, load_template
from tests.fixtures.invariants import (
    assert_each_node_has_one_capture_or_a_reason,
    assert_one_live_capture_per_node,
    assert_totals_equal_the_file_items,
)
from tests.fixtures.stack import STACK_PARAMETERS

pytestmark = pytest.mark.slow

NAMESPACE = "eks-capture"
CLUSTER = "shop-prod"
NODES = 50
OBJECTS = 100


def _time(event: dict[str, Any]) -> datetime:
    parsed = parse_event(event)
    assert isinstance(parsed, AlarmStateChange)
    return parsed.time


def _reserved_concurrency() -> int:
    """How many trigger invocations AWS runs at once for this stack (template.yaml's own number, read
    without the SAM transform, so the test needs no .venv-sam)."""
    trigger_function = Stack(load_template(), "test", dict(STACK_PARAMETERS)).resources["TriggerFunction"]
    return int(trigger_function["Properties"]["ReservedConcurrentExecutions"])


def test_a_burst_of_alarms_keeps_the_caps_and_starts_each_capture_once(
    deps: Deps, shop: KubeEmulator
) -> None:
    max_captures = NODES // 2  # half the nodes: the cap binds, and a node can still be asked twice
    nodes = dict(burst_nodes(shop, NODES))  # node name -> instance id
    events = alarm_burst(list(nodes.items()))
    capped = replace(
        deps, settings=deps.settings.model_copy(update={"max_concurrent_captures": max_captures})
    )

    workers = _reserved_concurrency()
    outcomes, _seconds = run_parallel(lambda e: trigger.handle(e, capped), events, workers)

    jobs = shop.objects(JOBS, NAMESPACE)
    running = {j["metadata"]["labels"]["eks-capture.io/capture-id"] for j in jobs}
    assert len(events) == 4 * NODES
    assert 0 < len(running) <= max_captures  # before capture slots: 26 captures for a cap of 25
    assert_one_live_capture_per_node(shop)
    by_event = {e["id"]: capture_id_for_event(e["id"], _time(e)) for e in events}
    sessions = capped.store.sessions(CLUSTER)
    assert sorted(s.capture_id for s in sessions) == sorted(set(by_event.values()))
    for event, outcome in zip(events, outcomes, strict=True):
        assert outcome.capture_id == by_event[event["id"]]
    alarms_capturing = Counter(s.trigger.alarm_name for s in sessions if s.capture_id in running)
    assert set(alarms_capturing.values()) == {1}  # a flapping alarm cools down: one capture at a time
    node_of_instance = {instance: name for name, instance in nodes.items()}
    event_of_capture = {by_event[e["id"]]: e for e in events}
    for capture_id in running:
        (query,) = event_of_capture[capture_id]["detail"]["configuration"]["metrics"]
        node = node_of_instance[query["metricStat"]["metric"]["dimensions"]["InstanceId"]]
        assert_each_node_has_one_capture_or_a_reason(capped.store, shop, capture_id, {node})
    assert sum(live_captures_per_node(shop).values()) == len(running)  # one node each, none twice


@pytest.fixture
def serial_dynamodb(aws: MotoServer) -> Iterator[DynamoDBProxy]:
    forwarder = DynamoDBProxy(aws.endpoint_url)
    yield forwarder
    forwarder.stop()


def test_a_thousand_object_events_delivered_concurrently_ten_times_each_give_exact_totals(
    settings: Settings, serial_dynamodb: DynamoDBProxy
) -> None:
    store = CaptureStore(
        settings.capture_table, boto3.client("dynamodb", endpoint_url=serial_dynamodb.endpoint_url)
    )
    s3 = boto3.client("s3")
    body = first_packets(3)
    keys = capture_files(store, s3, settings.capture_bucket, OBJECTS, 4, body)
    events = with_duplicates([object_created(settings.capture_bucket, key, body) for key in keys], 10)

    results, _seconds = run_parallel(lambda e: indexer.handle(e, store, s3), events, 16)

    statuses = Counter(outcome.status for batch in results for outcome in batch)
    assert len(events) == 1000
    assert statuses == {"indexed": len(keys), "duplicate": len(events) - len(keys)}
    per_capture: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        per_capture[key.split("/")[2]].append(key)
    for capture_id, captured in per_capture.items():
        assert sorted(f.s3_key for f in store.files_of_capture(capture_id)) == sorted(captured)
        assert_totals_equal_the_file_items(store, capture_id)
