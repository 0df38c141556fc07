"""A capture over more nodes than one lock transaction takes (100), when DynamoDB refuses one batch or all of
them past the retries: the refused nodes are recorded ``failed`` with DynamoDB's answer in words and hold no
lock, the batches that locked start their Jobs, and a second delivery of the event starts no Job twice.

Real paths: boto3 over HTTP to moto behind ``DynamoDBProxy`` (which refuses the transactions naming one
node's lock, as a hot partition or an IAM Deny on ``dynamodb:LeadingKeys`` would), the trigger's cluster
calls as its role, and the Jobs read back with the kubernetes client.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.captures.plan import Outcome
from eks_capture.errors import NodeLocksNotTaken
from eks_capture.kube import eks
from eks_capture.kube.labels import LABEL_CAPTURE_ID
from eks_capture.settings import Settings
from eks_capture.store.claims import CLAIMS_PER_TRANSACTION
from eks_capture.store.keys import TRANSACTION_ATTEMPTS
from localcloud.burst import burst_nodes
from localcloud.kube import KubeEmulator
from localcloud.outages import DENIED_PRINCIPAL, DynamoDBProxy, ThrottlingAnswer
from tests.events import load_event
from tests.fixtures.clock import Clock
from tests.fixtures.cluster import function_store
from tests.fixtures.invariants import tear_down_and_assert_nothing_left
from tests.fixtures.kube import batch_api
from tests.fixtures.stack import CLUSTER

NAMESPACE = "eks-capture"
NODEGROUP = "fleet"
NODES = 2 * CLAIMS_PER_TRANSACTION + 10  # three lock batches: 100, 100 and 10 nodes
HOT = f"{NODEGROUP}-150"  # a node of the second batch
THROTTLED = f"TransactionCanceledException (ThrottlingError) after {TRANSACTION_ATTEMPTS} attempts"
THROTTLED_CODE = "ThrottlingError"
THROTTLING_SAID = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your "
    "table or index so please try again shortly."
)
DENIED = "AccessDeniedException after 1 attempt"
DENIED_CODE = "AccessDeniedException"
DENIAL_SAID = (
    f"User: {DENIED_PRINCIPAL} is not authorized to perform: dynamodb:PutItem on resource: "
    "arn:aws:dynamodb:us-west-2:123456789012:table/"
)


@dataclass(frozen=True)
class Refusal:
    """What DynamoDB refuses, and what the capture must then be."""

    error: ThrottlingAnswer
    one_batch: bool  # only the transactions naming HOT's lock, else every lock transaction
    code: str  # DynamoDB's code, on each refused node's record
    refusal: str  # DynamoDB's error code and attempts, quoted once by the verdict
    said: str  # how DynamoDB's message begins, quoted once by the verdict
    status: str | None  # the first delivery's outcome; None: it raises NodeLocksNotTaken for Lambda's retry


REFUSALS = {
    "one batch of three throttled past its retries": Refusal(
        "TransactionCanceledException", True, THROTTLED_CODE, THROTTLED, THROTTLING_SAID, "running"
    ),
    "one batch of three denied by IAM": Refusal(
        "AccessDeniedException", True, DENIED_CODE, DENIED, DENIAL_SAID, "running"
    ),
    "every batch throttled past its retries": Refusal(
        "TransactionCanceledException", False, THROTTLED_CODE, THROTTLED, THROTTLING_SAID, None
    ),
    "every batch denied by IAM": Refusal(
        "AccessDeniedException", False, DENIED_CODE, DENIED, DENIAL_SAID, "failed"
    ),
}


@pytest.fixture
def fleet(shop: KubeEmulator) -> list[str]:
    """NODES more nodes in shop-prod, in node group ``fleet``."""
    return [name for name, _instance in burst_nodes(shop, NODES, prefix=NODEGROUP)]


@pytest.fixture
def refused_deps(deps: Deps, dynamodb: DynamoDBProxy, settings: Settings) -> Deps:
    """The trigger's collaborators with DynamoDB through the proxy, and room for the whole fleet."""
    return replace(
        deps,
        settings=settings.model_copy(update={"max_nodes_per_capture": NODES}),
        store=function_store(settings),
    )


def _fleet_capture() -> dict[str, Any]:
    """A manual Start Capture of every node of the fleet (events/start-capture-label-selector.json)."""
    event = load_event("start-capture-label-selector")
    event["detail"]["targets"]["node_selector"] = {"matchLabels": {"eks.amazonaws.com/nodegroup": NODEGROUP}}
    return event


def _job_nodes(capture_id: str) -> Counter[str]:
    """The nodes of the capture's Jobs, as the Kubernetes API lists them."""
    jobs = batch_api(eks.api_client(CLUSTER)).list_namespaced_job(
        NAMESPACE, label_selector=f"{LABEL_CAPTURE_ID}={capture_id}"
    )
    return Counter(job.spec.template.spec.node_name for job in jobs.items)


def _lock_holders(settings: Settings) -> dict[str, str]:
    """Each locked node of the cluster, with the capture holding its lock."""
    prefix = f"LOCK#{CLUSTER}#"
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=settings.capture_table)
    return {
        item["pk"]["S"].removeprefix(prefix): item["capture_id"]["S"]
        for page in pages
        for item in page["Items"]
        if item["pk"]["S"].startswith(prefix)
    }


def _deliver(event: dict[str, Any], deps: Deps) -> Outcome | NodeLocksNotTaken:
    try:
        return trigger.handle(event, deps)
    except NodeLocksNotTaken as error:
        return error


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_lock_batch_fails_its_own_nodes_in_words_and_the_locked_batches_start_once(
    refused_deps: Deps,
    dynamodb: DynamoDBProxy,
    fleet: list[str],
    refusal: Refusal,
) -> None:
    hot = next(name for name in fleet if name.startswith(HOT))
    event = _fleet_capture()
    dynamodb.throttle(
        "TransactWriteItems", error=refusal.error, naming=f"LOCK#{CLUSTER}#{hot}" if refusal.one_batch else ""
    )

    first = _deliver(event, refused_deps)

    dynamodb.clear()
    capture_id = str(first.capture_id if isinstance(first, Outcome) else first.details["capture_id"])
    session = refused_deps.store.get_session(capture_id)
    assert session is not None
    failed = {name for name, node in session.nodes.items() if node.status == "failed"}
    assert {session.nodes[name].reason for name in failed} == {f"node lock not taken: {refusal.code}"}
    assert f"; DynamoDB refused node locks: {refusal.refusal}: {refusal.said}" in session.verdict
    assert hot in failed
    assert len(failed) == (CLAIMS_PER_TRANSACTION if refusal.one_batch else NODES)
    locked = set(fleet) - failed
    assert sorted(session.nodes) == sorted(fleet)
    assert _job_nodes(capture_id) == Counter(locked)  # a Job exactly for each locked node
    assert _lock_holders(refused_deps.settings) == dict.fromkeys(locked, capture_id)
    if refusal.status is None:  # nothing locked, and a later try may: Lambda retries the event
        assert isinstance(first, NodeLocksNotTaken)
        assert first.retryable
        said = f"{refusal.refusal}: {refusal.said}"
        assert first.message.startswith(
            f"capture {capture_id}: no node lock taken for its {NODES} node(s): {said}"
        )
        assert session.status == "starting"
    else:
        assert isinstance(first, Outcome)
        assert (first.status, session.status) == (refusal.status, refusal.status)
        assert Counter(first.nodes.values()) == Counter({"failed": len(failed), "pending": len(locked)})
        said = f"{len(failed)} node(s) failed: " if locked else "no node could be captured ("
        assert said in session.verdict
        assert f"and {len(failed) - 3} more: node lock not taken: {refusal.code}" in session.verdict

    second = _deliver(event, refused_deps)  # a redelivery, or Lambda's retry of a raised first delivery

    assert isinstance(second, Outcome)
    if refusal.status is None:  # the retry starts every node, once
        assert second.status == "running"
        assert _job_nodes(capture_id) == Counter(fleet)
        assert _lock_holders(refused_deps.settings) == dict.fromkeys(fleet, capture_id)
    else:  # the first delivery's answer stands: no Job twice, none for the refused nodes
        assert second.status == "duplicate"
        assert _job_nodes(capture_id) == Counter(locked)


def test_a_capture_of_the_most_nodes_whose_every_lock_is_refused_records_each_node_within_the_item_size(
    deps: Deps, dynamodb: DynamoDBProxy, settings: Settings, shop: KubeEmulator
) -> None:
    most = Settings.model_fields["max_nodes_per_capture"].metadata[-1].le
    burst_nodes(shop, most, prefix=NODEGROUP)
    wide = replace(
        deps,
        settings=settings.model_copy(update={"max_nodes_per_capture": most}),
        store=function_store(settings),
    )
    dynamodb.throttle("TransactWriteItems", error="AccessDeniedException")

    outcome = trigger.handle(_fleet_capture(), wide)  # DynamoDB's 400 KB: each node with the whole IAM
    # message would not fit

    dynamodb.clear()
    assert outcome.status == "failed"
    session = wide.store.get_session(str(outcome.capture_id))
    assert session is not None
    assert session.status == "failed"
    assert {node.reason for node in session.nodes.values()} == {f"node lock not taken: {DENIED_CODE}"}
    assert len(session.nodes) == most
    assert (
        f"and {most - 3} more: node lock not taken: {DENIED_CODE}); DynamoDB refused node locks: {DENIED}: "
        in session.verdict
    )


def test_a_retry_whose_lock_batch_is_refused_keeps_the_jobs_an_earlier_attempt_made_there(
    refused_deps: Deps, dynamodb: DynamoDBProxy, fleet: list[str]
) -> None:
    hot = next(name for name in fleet if name.startswith(HOT))
    event = _fleet_capture()
    dynamodb.throttle("UpdateItem", error="AccessDeniedException", naming="CAPTURE#")  # the session's record
    with pytest.raises(ClientError, match="AccessDeniedException"):  # every Job made, then the attempt dies
        trigger.handle(event, refused_deps)
    dynamodb.clear()
    dynamodb.throttle("TransactWriteItems", error="AccessDeniedException", naming=f"LOCK#{CLUSTER}#{hot}")

    retried = trigger.handle(event, refused_deps)  # Lambda's retry: one batch refused this time

    dynamodb.clear()
    capture_id = str(retried.capture_id)
    session = refused_deps.store.get_session(capture_id)
    assert session is not None
    assert retried.status == session.status == "running"
    assert _job_nodes(capture_id) == Counter(fleet)
    assert {node.status for node in session.nodes.values()} == {"pending"}  # none failed with a Job running
    assert all(node.job for node in session.nodes.values())
    assert _lock_holders(refused_deps.settings) == dict.fromkeys(fleet, capture_id)  # the first attempt's


def test_the_end_of_a_capture_with_a_refused_batch_counts_its_nodes_not_captured_and_leaves_nothing(
    refused_deps: Deps, reaper_deps: Deps, dynamodb: DynamoDBProxy, shop: KubeEmulator, clock: Clock
) -> None:
    fleet = [name for name, _ in burst_nodes(shop, CLAIMS_PER_TRANSACTION + 1, prefix=NODEGROUP)]
    dynamodb.throttle(
        "TransactWriteItems", error="AccessDeniedException", naming=f"LOCK#{CLUSTER}#{fleet[0]}"
    )
    started = trigger.handle(_fleet_capture(), refused_deps)  # the first batch refused, one node locked
    dynamodb.clear()
    capture_id = str(started.capture_id)
    session = refused_deps.store.get_session(capture_id)
    assert session is not None
    assert Counter(started.nodes.values()) == {"failed": CLAIMS_PER_TRANSACTION, "pending": 1}

    tear_down_and_assert_nothing_left(reaper_deps, shop, clock, session.expires_at)  # no lock, Job or pod

    ended = refused_deps.store.get_session(capture_id)
    assert ended is not None
    assert ended.status == "failed"  # no node here uploads: none is proven captured
    assert ended.verdict.startswith(f"0 of {len(fleet)} node(s) captured: 0 file(s), 0 packets")
    refused = f"and {CLAIMS_PER_TRANSACTION - 3} more failed (node lock not taken: {DENIED_CODE})"
    assert refused in ended.verdict
    reasons = Counter(node.reason for node in ended.nodes.values())
    assert reasons[f"node lock not taken: {DENIED_CODE}"] == CLAIMS_PER_TRANSACTION
