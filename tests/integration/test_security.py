"""docs/security.md's controls, in the local cloud: events travel through template.yaml's real wiring
(moto's EventBridge, the router), the trigger runs against the emulated ``shop-prod`` cluster."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from eks_capture.captures import trigger
from eks_capture.captures.deps import Deps
from eks_capture.errors import CaptureRejected
from eks_capture.report.building import S3Files, report_capture
from eks_capture.settings import Settings
from localcloud.aws import ACCOUNT_ID
from localcloud.kube import KubeEmulator
from localcloud.kube.resources import JOBS
from localcloud.router import Router
from localcloud.template import Stack
from tests.events import load_event

NAMESPACE = "eks-capture"
OTHER_ACCOUNT = "210987654321"


def _entry(event: dict[str, Any], bus: str) -> dict[str, Any]:
    """A sample event as an operator's ``aws events put-events`` entry on ``bus``."""
    return {
        "EventBusName": bus,
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
    }


def _table_items(settings: Settings) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=settings.capture_table)["Items"]
    return items


def _lifetime(url: str) -> float:
    """Seconds a presigned URL stays valid (SigV4's X-Amz-Expires, or SigV2's absolute Expires)."""
    query = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()


def _put(entry: dict[str, Any]) -> None:
    events: Any = boto3.client("events")
    response = events.put_events(Entries=[entry])
    assert response["FailedEntryCount"] == 0, response


def test_a_start_capture_on_the_default_bus_reaches_no_function(
    shop: KubeEmulator, stack: Stack, router: Router
) -> None:
    request = load_event("start-capture-nodes")

    _put(_entry(request, "default"))
    on_default = router.drain()
    _put(_entry(request, stack.name_of("CaptureEventBus")))
    on_request_bus = router.drain()

    triggered = [i for i in on_request_bus if i.function == "TriggerFunction"]

    assert on_default == []
    assert [(i.error, i.result["status"]) for i in triggered] == [(None, "running")]
    assert len(shop.objects(JOBS, NAMESPACE)) == 2


def test_a_lookalike_source_reaches_no_function(shop: KubeEmulator, stack: Stack, router: Router) -> None:
    request = load_event("start-capture-nodes")
    for source in ("eks-capture.test", "Eks-Capture", "aws.eks-capture"):
        request["source"] = source
        _put(_entry(request, stack.name_of("CaptureEventBus")))

    assert router.drain() == []
    assert shop.objects(JOBS, NAMESPACE) == []


@pytest.mark.parametrize("name", ["start-capture-all", "alarm-single-metric-instance", "stop-capture"])
def test_an_event_from_another_account_is_rejected_and_creates_nothing(
    deps: Deps, shop: KubeEmulator, name: str
) -> None:
    event = load_event(name)
    event["account"] = OTHER_ACCOUNT

    with pytest.raises(CaptureRejected) as rejected:
        trigger.handle(event, deps)

    assert deps.settings.expected_account == ACCOUNT_ID
    assert rejected.value.field == "account"
    assert shop.objects(JOBS, NAMESPACE) == []
    assert _table_items(deps.settings) == []


def test_objects_written_to_the_capture_bucket_are_encrypted_at_rest(settings: Settings) -> None:
    s3 = boto3.client("s3")
    key = "captures/shop-prod/cap-20261125T100213Z-0a1b2c3d/node/20261125T100213Z-00000.pcap.zst"
    s3.put_object(Bucket=settings.capture_bucket, Key=key, Body=b"not really a pcap")

    head = s3.head_object(Bucket=settings.capture_bucket, Key=key)

    assert head["ServerSideEncryption"] == "AES256"


def test_the_capture_bucket_refuses_public_access(settings: Settings) -> None:
    block = boto3.client("s3").get_public_access_block(Bucket=settings.capture_bucket)

    assert set(block["PublicAccessBlockConfiguration"].values()) == {True}


def test_report_links_expire_within_an_hour_by_default(deps: Deps, shop: KubeEmulator) -> None:
    started = trigger.handle(load_event("start-capture-instances"), deps)
    assert started.capture_id is not None

    published = report_capture(
        started.capture_id, table=deps.settings.capture_table, bucket=deps.settings.capture_bucket
    )
    file_link = S3Files(boto3.client("s3"), deps.settings.capture_bucket).link(published.key, 60)

    assert published.key.startswith(f"captures/shop-prod/{started.capture_id}/")
    assert 3500 < _lifetime(published.url) <= 3600
    assert 0 < _lifetime(file_link) <= 60
