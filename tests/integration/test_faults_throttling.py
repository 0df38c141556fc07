"""DynamoDB throttling under bursts: the local cloud's DynamoDB (moto behind ``DynamoDBProxy``) refuses a
share of the writes with DynamoDB's own errors while a burst of alarms hits the trigger and a burst of
duplicated S3 object events hits the indexer. Each event is delivered as Lambda delivers an
asynchronous invocation (a failed attempt is retried twice), and after each burst the invariants of
test_faults.py hold: every requested node has exactly one capture or a recorded reason, the caps hold,
index totals equal the sum of the file items, no event is lost, nothing is left after teardown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_capture.captures import indexer, trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Outcome
from eks_capture.errors import CaptureError
from eks_capture.kube.calls import Cluster
from eks_capture.kube.labels import LABEL_CAPTURE_ID
from eks_capture.settings import Settings
from localcloud.burst import (
    alarm_burst,
    burst_nodes,
    capture_files,
    first_packets,
    object_created,
    run_parallel,
    with_duplicates,
)
from localcloud.kube import KubeEmulator
from localcloud.outages import DynamoDBProxy, ThrottlingAnswer
from localcloud.router import ASYNC_ATTEMPTS
from tests.fixtures.clock import Clock
from tests.fixtures.cluster import function_store
from tests.fixtures.invariants import (
    assert_each_node_has_one_capture_or_a_reason,
    assert_one_live_capture_per_node,
    assert_totals_equal_the_file_items,
    capture_jobs,
    tear_down_and_assert_nothing_left,
)
from tests.fixtures.sessions import manual_session

T = TypeVar("T")
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")
RATE = 0.3
BURST_NODES = 10
TRIGGER_WORKERS = 5  # the trigger's ReservedConcurrentExecutions in template.yaml
OBJECTS = 20
COPIES = 4
INDEXER_WORKERS = 12


@dataclass
class Delivery:
    """One event through a function as Lambda delivers it asynchronously: what it returned, and the
    errors of the attempts that failed (all of them when the event went to the dead-letter queue)."""

    result: Any
    failures: list[str]

    @property
    def lost(self) -> bool:
        return len(self.failures) == ASYNC_ATTEMPTS


def deliver(handle: Callable[[], T]) -> Delivery:
    """Retry as Lambda does what the handler lets escape (functions/*/app.py return the other errors)."""
    failures: list[str] = []
    for _ in range(ASYNC_ATTEMPTS):
        try:
            return Delivery(handle(), failures)
        except CaptureError as error:
            if not error.retryable:
                return Delivery(error, failures)
            failures.append(error.message)
        except Exception as error:  # whatever escapes a handler fails the attempt
            failures.append(f"{type(error).__name__}: {error}")
    return Delivery(None, failures)


@pytest.fixture
def throttled_deps(
    shop: KubeEmulator,
    settings: Settings,
    dynamodb: DynamoDBProxy,
    trigger_cluster: Callable[[str], Cluster],
) -> Deps:
    """The trigger's collaborators with the production DynamoDB client, through the proxy."""
    return Deps(settings=settings, store=function_store(settings), cluster=trigger_cluster)


def test_a_burst_of_alarms_and_its_teardown_under_throttled_writes_keep_every_invariant(
    throttled_deps: Deps,
    shop: KubeEmulator,
    dynamodb: DynamoDBProxy,
    teardown_cluster: Callable[[str], Cluster],
) -> None:
    nodes = dict(burst_nodes(shop, BURST_NODES))
    events = alarm_burst(list(nodes.items()))
    dynamodb.throttle(*WRITES, rate=RATE)

    deliveries, _seconds = run_parallel(
        lambda e: deliver(lambda: trigger.handle(e, throttled_deps)), events, TRIGGER_WORKERS
    )

    assert sum(dynamodb.throttled.values()) >= RATE / 2 * sum(dynamodb.requests[op] for op in WRITES)
    assert [d.failures for d in deliveries if d.lost] == []
    assert all(isinstance(d.result, Outcome) for d in deliveries)
    store = throttled_deps.store
    jobs = capture_jobs(shop)
    running = {j["metadata"]["labels"][LABEL_CAPTURE_ID] for j in jobs}
    assert 0 < len(running) <= throttled_deps.settings.max_concurrent_captures
    assert_one_live_capture_per_node(shop)
    node_of_instance = {instance: name for name, instance in nodes.items()}
    for event, delivery in zip(events, deliveries, strict=True):
        outcome = delivery.result
        session = store.get_session(outcome.capture_id)
        assert session is not None, outcome
        if session.status == "rejected":  # refused whole (cap, cooldown): the verdict says why
            assert session.verdict
            assert not session.nodes
            assert outcome.capture_id not in running
            continue
        (query,) = event["detail"]["configuration"]["metrics"]
        node = node_of_instance[query["metricStat"]["metric"]["dimensions"]["InstanceId"]]
        assert_each_node_has_one_capture_or_a_reason(store, shop, outcome.capture_id, {node})
        assert session.status == ("running" if outcome.capture_id in running else "failed"), session
    sessions = store.sessions("shop-prod")
    clock = Clock()
    reaper_deps = Deps(settings=throttled_deps.settings, store=store, now=clock, cluster=teardown_cluster)
    swept_before = dynamodb.throttled.total()
    tear_down_and_assert_nothing_left(reaper_deps, shop, clock, max(s.expires_at for s in sessions))
    assert dynamodb.throttled.total() > swept_before  # the sweeps' writes were throttled too


INDEXER_THROTTLING: dict[str, tuple[tuple[str, ...], ThrottlingAnswer, float]] = {
    "half the transactions cancelled for a throttled item": (
        ("TransactWriteItems",),
        "TransactionCanceledException",
        0.5,  # without retries of its own the indexer loses ~1 event in 8 to the dead-letter queue
    ),
    "writes over the table's provisioned throughput": (
        WRITES,
        "ProvisionedThroughputExceededException",
        RATE,
    ),
    "every call throttled by the request rate": ((), "ThrottlingException", RATE),
}


@pytest.mark.parametrize(
    ("operations", "error", "rate"), INDEXER_THROTTLING.values(), ids=INDEXER_THROTTLING.keys()
)
def test_duplicated_object_events_under_throttling_index_each_file_once_with_exact_totals(
    settings: Settings,
    dynamodb: DynamoDBProxy,
    operations: tuple[str, ...],
    error: ThrottlingAnswer,
    rate: float,
) -> None:
    store = function_store(settings)
    s3 = boto3.client("s3")
    body = first_packets(3)
    keys = capture_files(store, s3, settings.capture_bucket, OBJECTS, 3, body)
    events = with_duplicates([object_created(settings.capture_bucket, k, body) for k in keys], COPIES)
    dynamodb.throttle(*operations, rate=rate, error=error)

    deliveries, _seconds = run_parallel(
        lambda e: deliver(lambda: indexer.handle(e, store, s3)), events, INDEXER_WORKERS
    )

    dynamodb.clear()
    assert sum(dynamodb.throttled.values()) >= rate / 2 * len(events)
    assert [d.failures for d in deliveries if d.lost] == []
    statuses = Counter(o.status for d in deliveries for o in d.result)
    assert statuses == {"indexed": len(keys), "duplicate": len(events) - len(keys)}
    for capture_id in {k.split("/")[2] for k in keys}:
        assert_totals_equal_the_file_items(store, capture_id)
    assert sorted(
        f.s3_key for c in {k.split("/")[2] for k in keys} for f in store.files_of_capture(c)
    ) == sorted(keys)


def _one_try_more() -> Any:
    """A DynamoDB client that retries once (botocore's standard mode)."""
    return boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 2}))


def _lock_item(settings: Settings) -> dict[str, Any]:
    return {"TableName": settings.capture_table, "Item": {"pk": {"S": "LOCK#x"}, "sk": {"S": "LOCK"}}}


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_botocore_retries_a_throttled_call_itself(
    settings: Settings, dynamodb: DynamoDBProxy, error: ThrottlingAnswer
) -> None:
    dynamodb.throttle("PutItem", times=1, error=error)

    answer = _one_try_more().put_item(**_lock_item(settings))

    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert (dynamodb.requests["PutItem"], dynamodb.throttled["PutItem"]) == (2, 1)


def test_botocore_does_not_retry_a_transaction_cancelled_for_a_throttled_item(
    settings: Settings, dynamodb: DynamoDBProxy
) -> None:
    dynamodb.throttle("TransactWriteItems", times=1, error="TransactionCanceledException")

    with pytest.raises(ClientError) as refused:
        _one_try_more().transact_write_items(TransactItems=[{"Put": _lock_item(settings)}])

    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = refused.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["ThrottlingError"]
    assert dynamodb.requests["TransactWriteItems"] == 1


def test_a_batch_read_whose_keys_come_back_unprocessed_asks_again_until_it_has_every_session(
    settings: Settings, dynamodb: DynamoDBProxy
) -> None:
    store = function_store(settings)
    stored = [f"cap-20261125T031200Z-{index:08x}" for index in range(7)]
    for capture_id in stored:
        store.create_session(manual_session(capture_id, "batch read", event_id=capture_id))
    dynamodb.throttle("BatchGetItem", times=3, error="UnprocessedKeys")  # 8 keys: 4 read, then 2, then 1

    found = store.get_sessions([*stored, "cap-20261125T031200Z-ffffffff"])

    assert sorted(found) == stored
    assert all(session.trigger.event_id == capture_id for capture_id, session in found.items())
    assert dynamodb.throttled["BatchGetItem"] == 3
    assert dynamodb.requests["BatchGetItem"] == 1 + 3  # one more per partial answer
