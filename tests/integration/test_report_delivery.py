"""A capture's end, over the template's wiring: the teardown closes it and announces it on the lifecycle
bus, the report function stores the report next to the files and notifies once with a link that works.

The teardown and the report function run as the local cloud's Lambda processes, routed by the rules
template.yaml defines; the on-call inbox is an SQS queue subscribed to the notification topic.
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from eks_capture.captures.deps import Deps
from eks_capture.captures.indexer import index_object
from eks_capture.events.closings import CLOSED_DETAIL_TYPE
from eks_capture.events.s3 import S3ObjectRef
from eks_capture.ids import new_capture_id
from eks_capture.report import delivery
from eks_capture.settings import Settings
from eks_capture.store.catalog import CaptureStore
from eks_capture.store.sessions import CaptureSession, NodeCapture, Trigger
from localcloud.aws import MotoServer
from localcloud.provision import provision
from localcloud.router import Invocation, Router
from localcloud.template import Stack, load_template
from tests.fixtures.stack import STACK_PARAMETERS

CLUSTER = "shop-prod"
NODE = "ip-192-168-12-34.us-west-2.compute.internal"
PCAP = Path(__file__).resolve().parents[1] / "fixtures" / "captures" / "any-nano-head.pcap"


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack as the ``stack`` fixture deploys it, with an e-mail address, so it has a topic."""
    bound = Stack(load_template(), "test", {**STACK_PARAMETERS, "NotificationEmail": "oncall@example.com"})
    provision(bound)
    for name, value in bound.resolve(
        bound.template["Globals"]["Function"]["Environment"]["Variables"]
    ).items():
        monkeypatch.setenv(name, str(value))
    return bound


def _notifications(inbox: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in messages]


def _ended_capture(stack: Stack, with_file: bool = True) -> tuple[str, str]:
    """A capture whose Job is gone and whose time box is over, with one indexed pcap; its id and file key."""
    now = datetime.now(UTC)
    capture_id = new_capture_id(now - timedelta(minutes=10))
    store = CaptureStore(os.environ["CAPTURE_TABLE"])
    prefix = f"captures/{CLUSTER}/{capture_id}/"
    store.create_session(
        CaptureSession(
            capture_id=capture_id,
            cluster=CLUSTER,
            status="running",
            trigger=Trigger(kind="manual", reason="checkout latency", event_id=capture_id),
            created_at=now - timedelta(minutes=10),
            expires_at=now - timedelta(minutes=5),
            duration_seconds=60,
            nodes={NODE: NodeCapture(node=NODE, job=f"{capture_id}-0", status="running")},
            s3_prefix=prefix,
        )
    )
    key = f"{prefix}{NODE}/20261125T031200Z-00000.pcap"
    if with_file:
        s3, bucket = boto3.client("s3"), os.environ["CAPTURE_BUCKET"]
        s3.put_object(Bucket=bucket, Key=key, Body=PCAP.read_bytes())
        ref = S3ObjectRef(bucket=bucket, key=key, size=None, etag=None, sequencer=None)
        assert index_object(ref, store, s3).status == "indexed"
    return capture_id, key


def _closed_capture(stack: Stack) -> str:
    """An ended capture closed as the teardown would close it, without announcing it."""
    capture_id, _ = _ended_capture(stack)
    store = CaptureStore(os.environ["CAPTURE_TABLE"])
    session = store.get_session(capture_id)
    assert session is not None
    closed = session.model_copy(update={"status": "completed", "ended_at": datetime.now(UTC)})
    assert store.replace_session(closed, expected_status="running")
    return capture_id


def _sweep(live: Router) -> dict[str, list[Invocation]]:
    """Fire the teardown's schedule; its and the report function's invocations, which must succeed."""
    live.fire_schedule("TeardownFunction")
    by_function: dict[str, list[Invocation]] = {}
    for invocation in live.drain(settle_seconds=1.0):
        by_function.setdefault(invocation.function, []).append(invocation)
    for invocation in by_function.get("TeardownFunction", []) + by_function.get("ReportFunction", []):
        assert invocation.error is None, invocation.error
    return by_function


def _link(message: str) -> str:
    (line,) = [line for line in message.splitlines() if line.startswith("Report: ")]
    return line.removeprefix("Report: ")


def test_a_closed_capture_is_reported_next_to_its_files_and_the_notification_links_to_the_report(
    stack: Stack, inbox: str, live: Router
) -> None:
    capture_id, _ = _ended_capture(stack)

    invocations = _sweep(live)

    [teardown] = invocations["TeardownFunction"]
    [report] = invocations["ReportFunction"]
    assert teardown.result["sweeps"][0]["closed"] == {capture_id: "completed"}
    assert report.result["status"] == "notified"
    stored = boto3.client("s3").get_object(
        Bucket=os.environ["CAPTURE_BUCKET"], Key=report.result["report_key"]
    )
    page = stored["Body"].read()
    assert report.result["report_key"] == f"captures/{CLUSTER}/{capture_id}/report.html"
    assert stored["ContentType"].startswith("text/html")
    assert capture_id.encode() in page
    assert b"<svg" in page
    [notification] = _notifications(inbox)
    assert capture_id in notification["Subject"]
    url = _link(notification["Message"])
    signed = parse_qs(urlparse(url).query)
    assert signed["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(signed["X-Amz-Expires"][0]) <= 3600
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == page


def test_a_report_that_fails_still_lets_the_end_notification_out_naming_why(
    stack: Stack, inbox: str, live: Router
) -> None:
    capture_id, key = _ended_capture(stack)
    boto3.client("s3").delete_object(Bucket=os.environ["CAPTURE_BUCKET"], Key=key)  # expired, say

    [report] = _sweep(live)["ReportFunction"]

    [notification] = _notifications(inbox)
    assert report.result["status"] == "notified"
    assert report.result["report_key"] == ""
    assert "NoSuchKey" in report.result["problem"]
    assert _link(notification["Message"]).startswith("not built (")
    assert f"eks-capture report {capture_id}" in notification["Message"]
    assert "http" not in _link(notification["Message"])


def test_a_redelivered_capture_closed_event_notifies_no_one_again(
    stack: Stack, inbox: str, live: Router
) -> None:
    _ended_capture(stack)
    [first] = _sweep(live)["ReportFunction"]

    again = live.invoke("ReportFunction", first.event)

    assert again.error is None, again.error
    assert again.result["status"] == "duplicate"
    assert len(_notifications(inbox)) == 1


def test_when_the_lifecycle_bus_is_unreachable_the_teardown_notifies_without_a_report(
    stack: Stack, inbox: str, live: Router
) -> None:
    capture_id, _ = _ended_capture(stack)
    boto3.client("events").delete_event_bus(Name=stack.name_of("CaptureLifecycleBus"))

    invocations = _sweep(live)

    assert "ReportFunction" not in invocations
    [notification] = _notifications(inbox)
    assert capture_id in notification["Subject"]
    assert f"{CLOSED_DETAIL_TYPE} event could not be sent" in _link(notification["Message"])


def test_a_report_with_no_time_left_in_the_invocation_is_named_and_the_notification_still_goes(
    stack: Stack, inbox: str
) -> None:
    capture_id = _closed_capture(stack)
    deps = Deps.for_settings(Settings.from_env())

    done = delivery.deliver(deps, capture_id, seconds_left=lambda: delivery.NOTIFY_RESERVE_SECONDS)

    [notification] = _notifications(inbox)
    assert done.status == "notified"
    assert "no time was left" in _link(notification["Message"])
    assert deps.store.end_notice_sent(capture_id)


def _deliver_now(capture_id: str) -> delivery.Delivery:
    deps = Deps.for_settings(Settings.from_env())
    return delivery.deliver(deps, capture_id, seconds_left=lambda: 600.0)


def test_an_event_naming_an_unknown_or_still_open_capture_reports_and_notifies_nothing(
    stack: Stack, inbox: str
) -> None:
    open_capture, _ = _ended_capture(stack, with_file=False)
    unknown = new_capture_id(datetime.now(UTC))

    outcomes = {_deliver_now(open_capture).status, _deliver_now(unknown).status}

    assert outcomes == {"not_closed", "unknown_capture"}
    assert _notifications(inbox) == []
    listed = boto3.client("s3").list_objects_v2(Bucket=os.environ["CAPTURE_BUCKET"], Prefix="captures/")
    assert not [o for o in listed.get("Contents", []) if o["Key"].endswith("report.html")]


def test_a_notification_sns_refuses_fails_the_invocation_so_that_it_is_retried(stack: Stack) -> None:
    capture_id = _closed_capture(stack)
    boto3.client("sns").delete_topic(TopicArn=stack.physical_id("NotificationTopic"))
    deps = Deps.for_settings(Settings.from_env())

    with pytest.raises(delivery.NotificationNotSent):
        delivery.deliver(deps, capture_id, seconds_left=lambda: 600.0)

    assert not deps.store.end_notice_sent(capture_id)
